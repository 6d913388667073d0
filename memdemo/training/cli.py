"""`python -m memdemo train`: train EmojiMem with the DDPM or the Ambient objective (resumes from OUT/checkpoint)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from memdemo.data.emojimem import DEFAULT_DIR, EmojiMem
from memdemo.training.autoencoder import AutoencoderTrainConfig, train_autoencoder
from memdemo.training.copydet import CopydetTrainConfig, calibrate_copydet, train_copydet, write_calibration
from memdemo.training.objectives import PREDICTIONS
from memdemo.training.trainer import DEFAULT_T_NATURE, OBJECTIVES, TrainConfig, train


def add_commands(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train EmojiMem (DDPM or Ambient), resumable")
    defaults = TrainConfig()
    parser.add_argument("--objective", required=True, choices=OBJECTIVES)
    parser.add_argument(
        "--t-nature", type=int, help=f"Ambient: noise level t_n of the stored copies (default {DEFAULT_T_NATURE})"
    )
    parser.add_argument("--prediction", choices=PREDICTIONS, default=defaults.prediction)
    parser.add_argument("--min-snr-gamma", type=float, help="weight the loss by min(SNR_t, γ) in x0 space")
    parser.add_argument("--autoencoder", type=Path, help="train on the latents of this `train-autoencoder` folder")
    parser.add_argument("--out", type=Path, required=True, help="model folder, e.g. assets/emojimem-ddpm")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    parser.add_argument("--max-cpu-minutes", type=float, help="stop (and checkpoint) after this much CPU time")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.set_defaults(run=_train)

    autoencoder = commands.add_parser("train-autoencoder", help="train the autoencoder of a latent EmojiMem, resumable")
    ae_defaults = AutoencoderTrainConfig()
    autoencoder.add_argument("--out", type=Path, required=True, help="autoencoder folder, e.g. assets/emojimem-vae")
    autoencoder.add_argument("--dataset", type=Path, default=DEFAULT_DIR)
    autoencoder.add_argument("--steps", type=int, default=ae_defaults.steps)
    autoencoder.add_argument("--batch-size", type=int, default=ae_defaults.batch_size)
    autoencoder.add_argument("--lr", type=float, default=ae_defaults.lr)
    autoencoder.add_argument("--seed", type=int, default=ae_defaults.seed)
    autoencoder.add_argument("--max-cpu-minutes", type=float, help="stop (and checkpoint) after this much CPU time")
    autoencoder.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    autoencoder.set_defaults(run=_train_autoencoder)

    copydet = commands.add_parser("train-copydet", help="train and calibrate the copydet descriptor, resumable")
    copydet_defaults = CopydetTrainConfig()
    copydet.add_argument("--out", type=Path, required=True, help="descriptor folder, e.g. assets/emojimem-copydet")
    copydet.add_argument("--dataset", type=Path, default=DEFAULT_DIR)
    copydet.add_argument("--steps", type=int, default=copydet_defaults.steps)
    copydet.add_argument("--batch-size", type=int, default=copydet_defaults.batch_size)
    copydet.add_argument("--lr", type=float, default=copydet_defaults.lr)
    copydet.add_argument("--seed", type=int, default=copydet_defaults.seed)
    copydet.add_argument("--noise-aware", action="store_true", help="degrade one view like an early, noisy x̂0")
    copydet.add_argument("--input-blur", type=float, default=0.0, help="σ of a fixed Gaussian blur on the input")
    copydet.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    copydet.set_defaults(run=_train_copydet)


def _train(args: argparse.Namespace) -> None:
    config = TrainConfig(
        objective=args.objective,
        t_nature=args.t_nature,
        prediction=args.prediction,
        min_snr_gamma=args.min_snr_gamma,
        autoencoder=None if args.autoencoder is None else str(args.autoencoder),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        max_cpu_minutes=args.max_cpu_minutes,
    )
    card = train(config, EmojiMem.load(args.dataset), args.out, args.device)
    print(json.dumps(card, indent=1))


def _train_autoencoder(args: argparse.Namespace) -> None:
    config = AutoencoderTrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        max_cpu_minutes=args.max_cpu_minutes,
    )
    card = train_autoencoder(config, EmojiMem.load(args.dataset), args.out, args.device)
    print(json.dumps(card, indent=1))


def _train_copydet(args: argparse.Namespace) -> None:
    config = CopydetTrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        noise_aware=args.noise_aware,
        input_blur=args.input_blur,
    )
    dataset = EmojiMem.load(args.dataset)
    model = train_copydet(config, dataset, args.out, args.device)
    calibration = calibrate_copydet(model, dataset)
    write_calibration(args.out, calibration)
    print(json.dumps(calibration, indent=1))

"""`python -m memdemo train`: train EmojiMem with the DDPM or the Ambient objective (resumes from OUT/checkpoint)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from memdemo.backends import checked_device
from memdemo.data.emojimem import DEFAULT_DIR, EmojiMem
from memdemo.training.autoencoder import AutoencoderTrainConfig, train_autoencoder
from memdemo.training.copydet import CopydetTrainConfig, calibrate_copydet, train_copydet, write_calibration
from memdemo.training.objectives import PREDICTIONS
from memdemo.training.trainer import DEFAULT_T_NATURE, OBJECTIVES, TrainConfig, train


def _common(parser: argparse.ArgumentParser, defaults: object, example: str) -> None:
    """The options every trainer shares, with its own defaults."""
    parser.add_argument("--out", type=Path, required=True, help=f"output folder, e.g. {example}")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DIR)
    for flag in ("steps", "batch_size", "lr", "seed"):
        value = getattr(defaults, flag)
        parser.add_argument("--" + flag.replace("_", "-"), type=type(value), default=value)
    if hasattr(defaults, "max_cpu_minutes"):
        parser.add_argument("--max-cpu-minutes", type=float, help="stop (and checkpoint) after this much CPU time")
    if hasattr(defaults, "stop_at"):
        parser.add_argument(
            "--stop-at", type=int, help="stop (and checkpoint) at this step; the schedule still runs to --steps"
        )
    parser.add_argument("--device", help="cpu or cuda (default: cuda when present)")


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
    parser.add_argument(
        "--caption-dropout",
        type=float,
        default=defaults.caption_dropout,
        help="share of each batch trained with the empty caption (may change when a run resumes)",
    )
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    _common(parser, defaults, "training/emojimem-v2-ddpm")
    parser.set_defaults(run=_train)

    autoencoder = commands.add_parser("train-autoencoder", help="train the autoencoder of a latent EmojiMem, resumable")
    _common(autoencoder, AutoencoderTrainConfig(), "training/emojimem-vae")
    autoencoder.set_defaults(run=_train_autoencoder)

    copydet = commands.add_parser("train-copydet", help="train and calibrate the copydet descriptor, resumable")
    copydet.add_argument("--noise-aware", action="store_true", help="degrade one view like an early, noisy x̂0")
    copydet.add_argument("--input-blur", type=float, default=0.0, help="σ of a fixed Gaussian blur on the input")
    copydet.add_argument(
        "--adversarial", type=float, default=0.0, help="L∞ radius of an attack on one view (robust to G_sim's edits)"
    )
    copydet.add_argument("--hard-negatives", action="store_true", help="half of each batch: look-alikes of the rest")
    _common(copydet, CopydetTrainConfig(), "assets/emojimem-copydet")
    copydet.set_defaults(run=_train_copydet)


def config_from_args(cls: type, args: argparse.Namespace):
    """A trainer config from the parsed options of the same names (paths as strings); unset options keep defaults."""
    names = {field.name for field in dataclasses.fields(cls)}
    values = {key: value for key, value in vars(args).items() if key in names}
    values = {key: str(value) if isinstance(value, Path) else value for key, value in values.items()}
    return cls(**values)


def _train(args: argparse.Namespace) -> None:
    config = config_from_args(TrainConfig, args)
    card = train(config, EmojiMem.load(args.dataset), args.out, checked_device(args.device))
    print(json.dumps(card, indent=1))


def _train_autoencoder(args: argparse.Namespace) -> None:
    config = config_from_args(AutoencoderTrainConfig, args)
    card = train_autoencoder(config, EmojiMem.load(args.dataset), args.out, checked_device(args.device))
    print(json.dumps(card, indent=1))


def _train_copydet(args: argparse.Namespace) -> None:
    config = config_from_args(CopydetTrainConfig, args)
    dataset = EmojiMem.load(args.dataset)
    model = train_copydet(config, dataset, args.out, checked_device(args.device))
    calibration = calibrate_copydet(model, dataset)
    write_calibration(args.out, calibration)
    print(json.dumps(calibration, indent=1))

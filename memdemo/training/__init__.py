"""Training EmojiMem: the DDPM and Ambient objectives and the training loop."""

"""Export: the dataset plus chosen pairs, in the layouts trainers read (Cityscapes, mmseg, Hugging Face)."""

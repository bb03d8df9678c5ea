"""Constants shared by the data pipeline and the models.

They live outside ``models/`` and ``data/`` so that neither room has to import the other:
the data pipeline normalizes clips with these values and the pretraining target undoes
that normalization with the same values.
"""

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel mean (RGB, in [0, 1]) used to normalize every clip."""

IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Per-channel standard deviation (RGB, in [0, 1]) used to normalize every clip."""

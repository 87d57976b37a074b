"""Exception types raised by anpr_core; jobs catch them at the edge and turn them into rows."""


class AnprError(Exception):
    """Base class of every error anpr_core raises on purpose."""


class ImageError(AnprError, ValueError):
    """The input is not an image the pipeline can read (wrong type, empty, corrupt, too large)."""


class ModelError(AnprError):
    """The character model is missing, broken, or does not fit the region."""


class RegionError(AnprError, ValueError):
    """A region name or region file is unknown or invalid."""

"""timm_ext: IPMix and PixMix inside timm training pipelines."""

__version__ = "0.1.0"

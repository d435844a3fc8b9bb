"""Readers (and writers, for tests and conversions) of the standard data-set layouts.

Readers stream or memory-map; nothing is downloaded. Layouts are exactly those the benchmark
authors publish, so existing downloads work unchanged (see docs/data.md, "Data layouts"). One module per
concern; every public name is re-exported here (``from robust_eval.data import X``):

- :mod:`robust_mix.cifar`: the official CIFAR-10/100 python archives (restricted unpickler), shared
  with ``timm train``;
- :mod:`~robust_eval.data.images`: image files, ImageFolder trees, ``.npy`` image arrays;
- :mod:`~robust_eval.data.sources`: :class:`ImageSource` (``batch``, ``subset``, ``sample``) and its kinds;
- :mod:`~robust_eval.data.corruptions`: -C / -C-bar sets, severities, ``make-c`` manifests;
- :mod:`~robust_eval.data.perturbations`: -P arrays and ImageNet-P videos;
- :mod:`~robust_eval.data.imagenet_sets`: ImageNet-V2 (class-index folders) and ReaL labels;
- :mod:`~robust_eval.data.ood`: the OOD sets (synthetic and the real sets of the CIFAR protocol);
- :mod:`~robust_eval.data.layouts`: the one table of layouts (places, "put X at Y" hints, validators,
  readers) behind the location functions and ``robust-eval data check``.
"""

from __future__ import annotations

from robust_eval.data.corruptions import (
    corruption_severities,
    generator_manifest,
    load_corruption_cell,
    load_corruption_labels,
    severity_folders,
)
from robust_eval.data.imagenet_sets import (
    IMAGENET_CLASSES,
    IMAGENET_VAL_IMAGES,
    list_class_index_folders,
    load_real_labels,
    real_labels_of,
)
from robust_eval.data.images import (
    EVAL_SPLITS,
    TRAIN_SPLIT,
    imagefolder_split,
    list_image_files,
    list_imagefolder,
    load_npy_images,
    read_image,
)
from robust_eval.data.layouts import (
    LAYOUTS,
    OOD_SET_PLACES,
    Layout,
    LayoutEntry,
    check_layouts,
    clean_layout,
    clean_root,
    corruption_folder,
    corruption_layout,
    expected_corruption_folder,
    fallback_data_dir,
    find_ood_sets,
    generated_hint,
    generated_set,
    list_ood_sets,
    perturbation_folder,
    perturbation_layout,
    recorded_data_dir,
)
from robust_eval.data.ood import (
    PROTOCOL_OOD_SETS,
    REAL_OOD_SETS,
    SYNTHETIC_BLOCK,
    SYNTHETIC_OOD,
    OODSet,
    SyntheticSource,
    load_svhn,
    ood_source,
    other_cifar,
    read_image_pil,
    reference_resize_crop,
    synthetic_ood,
)
from robust_eval.data.perturbations import (
    VideoSequenceSource,
    list_perturbation_videos,
    load_perturbation,
    load_perturbation_array,
    read_video,
)
from robust_eval.data.sources import (
    ArraySource,
    FileSource,
    ImageSource,
    SequenceSource,
    resize_center_crop,
    sample_indices,
)
from robust_mix.cifar import (
    CIFAR_ARCHIVE,
    CIFAR_CLASSES,
    CIFAR_FOLDERS,
    CIFAR_TITLES,
    DataLayoutError,
    find_cifar_folder,
    load_cifar,
    write_cifar,
)

__all__ = [
    "CIFAR_ARCHIVE",
    "CIFAR_CLASSES",
    "CIFAR_FOLDERS",
    "CIFAR_TITLES",
    "EVAL_SPLITS",
    "IMAGENET_CLASSES",
    "IMAGENET_VAL_IMAGES",
    "LAYOUTS",
    "OOD_SET_PLACES",
    "PROTOCOL_OOD_SETS",
    "REAL_OOD_SETS",
    "SYNTHETIC_BLOCK",
    "SYNTHETIC_OOD",
    "TRAIN_SPLIT",
    "ArraySource",
    "DataLayoutError",
    "FileSource",
    "ImageSource",
    "Layout",
    "LayoutEntry",
    "OODSet",
    "SequenceSource",
    "SyntheticSource",
    "VideoSequenceSource",
    "check_layouts",
    "clean_layout",
    "clean_root",
    "corruption_folder",
    "corruption_layout",
    "corruption_severities",
    "expected_corruption_folder",
    "fallback_data_dir",
    "find_cifar_folder",
    "find_ood_sets",
    "generated_hint",
    "generated_set",
    "generator_manifest",
    "imagefolder_split",
    "list_class_index_folders",
    "list_image_files",
    "list_imagefolder",
    "list_ood_sets",
    "list_perturbation_videos",
    "load_cifar",
    "load_corruption_cell",
    "load_corruption_labels",
    "load_npy_images",
    "load_perturbation",
    "load_perturbation_array",
    "load_real_labels",
    "load_svhn",
    "ood_source",
    "other_cifar",
    "perturbation_folder",
    "perturbation_layout",
    "read_image",
    "read_image_pil",
    "read_video",
    "real_labels_of",
    "recorded_data_dir",
    "reference_resize_crop",
    "resize_center_crop",
    "sample_indices",
    "severity_folders",
    "synthetic_ood",
    "write_cifar",
]

"""Image files as the DataModules read them: one decoder, one conversion, each real file once.

Every image a model sees, in training, evaluation and prediction, goes through
:func:`load_image`, so a photo is read the same way whatever its format:

1. decoded by PIL (the first frame of an animation or a multi-page file);
2. turned upright by its EXIF orientation (``ImageOps.exif_transpose``);
3. 16-bit and 32-bit integer pixels (``I;16``, ``I``) divided by 257 and rounded: 0..65535 -> 0..255;
4. transparency (``RGBA``, ``LA``, ``PA``, a palette or ``L`` image with a transparent
   colour) composited over opaque black, so a transparent pixel is black whatever colour
   the file stores under it;
5. converted with PIL's ``convert`` to the model's mode, ``RGB`` or ``L`` (CMYK, YCbCr,
   palette and 1-bit images by PIL's rules; ``L`` is ITU-R 601-2 luma).

An opaque ``RGBA``/``LA`` file, a ``P``/GIF with an exact palette, a ``CMYK`` TIFF
made from an RGB image and a 16-bit copy of an 8-bit image (values times 257) give the
same pixels as the original. :data:`PREPROCESS_RULES` states these rules in the
metadata of exported models, and the README's ONNX example follows them.

:func:`walk_files` lists a folder tree following links but counting each real file
(device and inode) once and never entering a folder twice, so a symlink loop or a
duplicate link cannot repeat an image (or put it in both training and validation).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes

from resnet_lightning.data.errors import DataError

# What class folders are searched for: torchvision ImageFolder's extensions and the other
# common formats PIL reads without external tools (prediction reads every file instead).
IMAGE_EXTENSIONS = tuple(sorted({*IMG_EXTENSIONS, ".gif", ".jfif", ".jpe", ".apng", ".avif", ".pbm", ".pnm", ".tga", ".qoi", ".ico", ".dib"}))

PREPROCESS_RULES = {
    "decode": "PIL Image.open, first frame",
    "orientation": "PIL ImageOps.exif_transpose",
    "16_bit": "modes I;16 and I: divide by 257, round, clip to 0..255",
    "alpha": "composite over opaque black (PIL Image.alpha_composite)",
    "convert": "PIL Image.convert(mode)",
}


def is_image(name: str) -> bool:
    """Whether a file name has one of :data:`IMAGE_EXTENSIONS` and is not hidden."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


class ImageDecodeError(DataError):
    """An image file that cannot be decoded; the message names it.

    Raised in a DataLoader worker, torch re-raises it in the main process as
    ``ImageDecodeError("Caught ImageDecodeError in DataLoader worker process 0. Original
    Traceback ...")``; that is cut back to the original message, so the user still reads
    one line naming the file, not a worker's traceback.
    """

    def __init__(self, message: str, problem: str = "") -> None:
        if "Original Traceback" in message:
            message = message.rstrip().rsplit(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)
        self.problem = problem or message  # what is wrong, without the file's name


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """``image`` upright, 8-bit, transparency over black, in ``mode`` (see the module's rules 2-5)."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "I" or image.mode.startswith("I;16"):  # 16-bit: 0..65535 -> 0..255
        image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8))
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return image.convert(mode)


def decode_problem(err: BaseException) -> str:
    """What is wrong with a file that PIL could not read, in a few words."""
    if isinstance(err, Image.UnidentifiedImageError):
        return "not an image file PIL can read"
    if isinstance(err, Image.DecompressionBombError):
        return f"too large to decode safely ({err})"
    if isinstance(err, FileNotFoundError):
        return "it does not exist (a broken link?)"
    if isinstance(err, IsADirectoryError):
        return "it is a folder"
    if isinstance(err, PermissionError):
        return "permission denied"
    if isinstance(err, _NotRegularFile):
        return "not a regular file (a pipe, socket or device)"
    return f"truncated or corrupt ({type(err).__name__}: {' '.join(str(err).split())})"


class _NotRegularFile(OSError):
    pass


def _require_regular(path: Path) -> None:
    """Refuse a pipe, socket or device before opening it: reading a pipe would wait forever."""
    if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
        raise _NotRegularFile(f"{path} is not a regular file")


def load_image(path: Path, mode: str = "RGB") -> Image.Image:
    """The image file ``path`` decoded and converted to ``mode`` (see the module's rules).

    Raises:
        ImageDecodeError: naming the file, when it cannot be read or decoded.
    """
    try:
        _require_regular(path)
        with open(path, "rb") as f:
            image = Image.open(f)
            image.load()  # decode now, while the file is open; corrupt data fails here
            return to_mode(image, mode)
    # PIL's decoders raise many types on damaged input (OSError, SyntaxError, ValueError,
    # EOFError, struct.error, ...): a file that breaks the decoder is a bad file, not a bug here.
    except Exception as err:  # noqa: BLE001
        problem = decode_problem(err)
        raise ImageDecodeError(
            f"{path} could not be read as an image: {problem}. Replace it with a good copy or delete it", problem
        ) from None


def can_open(path: Path) -> str | None:
    """None if PIL recognises ``path`` as an image (its header only, fast); else what is wrong."""
    try:
        _require_regular(path)
        with Image.open(path):
            return None
    except Exception as err:  # noqa: BLE001 (as in load_image)
        return decode_problem(err)


def _key(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()  # follows links: the real file or folder
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def walk_files(
    folder: Path, keep: Callable[[str], bool], seen: dict | None = None, avoid: Iterable[Path] = (), unique: bool = True
) -> tuple[list[Path], list[str]]:
    """Every file below ``folder`` whose name ``keep`` accepts, each real file once, sorted.

    Links are followed, but never into a folder already entered, an ancestor of
    ``folder`` (a symlink loop) or one of ``avoid`` (e.g. the other class folders);
    a file already listed here or in ``seen`` (the same device and inode: a symlink or
    a hard link to it) is skipped. Hidden files and folders (``.name``) are skipped.

    Args:
        folder: The tree.
        keep: Which file names to list.
        seen: ``(device, inode) -> path`` of files listed before, updated; share it
            between calls so a file is listed in one of them only.
        avoid: Folders not to enter through a link.
        unique: False: list every path to a file, links to the same file too (folders are still entered once).

    Returns:
        The files, and one ``"skipped -> what it repeats"`` note per skipped link, for :func:`warn_skipped`.
    """
    seen = {} if seen is None else seen
    folder = Path(folder)
    entered = {key: path for path in [*folder.resolve().parents, *avoid] if (key := _key(path)) is not None}
    entered[_key(folder)] = folder
    files, notes = [], []
    # Depth first, names in order, as os.walk(followlinks=True) but entering each folder once.
    # A file is known by stat's device and inode (readdir's inode can differ from stat's on overlayfs).
    stack = [folder]
    while stack:
        here = stack.pop()
        try:
            with os.scandir(here) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as err:  # os.walk would skip a folder it cannot list, without a word
            raise DataError(
                f"{here} cannot be listed ({err.strerror}); give read access (chmod -R a+rX {here}) "
                "or move it out of the folder"
            ) from None
        folders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # through a link too
            except OSError:
                is_dir = False
            if is_dir:
                key = _key(path)
                if key is None:
                    continue
                if key in entered:  # a loop, a second link to a folder, or a folder kept out
                    notes.append(f"{path} -> {entered[key]}")
                    continue
                entered[key] = path
                folders.append(path)
                continue
            if not keep(entry.name):
                continue
            try:
                stat = entry.stat()  # through a link: the file itself
                key = (stat.st_dev, stat.st_ino)
            except OSError:
                key = None
            if key is None:  # a broken link: listed, so that reading it says what is wrong
                files.append(path)
            elif unique and key in seen:
                notes.append(f"{path} -> {seen[key]}")
            else:
                seen[key] = path
                files.append(path)
        stack.extend(reversed(folders))
    return sorted(files), notes


def folder_names(folder: Path) -> list[str]:
    """The sorted names of the sub-folders of ``folder`` (links to folders too), as torchvision's
    ``find_classes`` lists them; ``[]`` where there are none."""
    try:
        return find_classes(folder)[0]
    except FileNotFoundError:  # torchvision: "Couldn't find any class folder in ..."
        return []


def class_files(
    root: Path, classes: Iterable[str], keep: Callable[[str], bool], seen: dict | None = None
) -> tuple[dict[str, list[Path]], list[str]]:
    """The files of each class folder ``root/<class>/`` there is, by :func:`walk_files`; a link from one
    class folder into another is not followed, so a file belongs to one class only.

    Args:
        root: The split's folder.
        classes: The class names; those without a folder under ``root`` are left out.
        keep: Which file names to list.
        seen: As for :func:`walk_files`: share it between splits so a file is in one split only.

    Returns:
        ``{class: files}`` in the order of ``classes``, and the notes of the links skipped.
    """
    seen = {} if seen is None else seen
    present = [name for name in classes if (root / name).is_dir()]  # a val/ or test/ may lack a class
    files: dict[str, list[Path]] = {}
    notes: list[str] = []
    for name in present:
        files[name], skipped = walk_files(root / name, keep, seen, avoid=[root / other for other in present if other != name])
        notes += skipped
    return files, notes

def warn(message: str) -> None:
    """Print ``resnet-lightning: warning: <message>`` to stderr, on rank zero only."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only  # late: Lightning is slow to import

    if getattr(rank_zero_only, "rank", 0) == 0:
        print(f"resnet-lightning: warning: {message}", file=sys.stderr)


def warn_skipped(notes: Iterable[str]) -> None:
    """One warning naming the loops and duplicate files :func:`walk_files` skipped (nothing if none)."""
    notes = list(notes)
    if notes:
        shown = "; ".join(notes[:5]) + (f"; and {len(notes) - 5} more" if len(notes) > 5 else "")
        warn(
            f"skipped {len(notes)} link(s) to a file or folder already counted (a symlink loop or a duplicate), "
            f"so that each image is used once: {shown}"
        )

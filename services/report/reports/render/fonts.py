"""Locating a CJK font at run time, for charts (matplotlib) and PDF (WeasyPrint via fontconfig).

Debian packages ``fonts-wqy-microhei`` or ``fonts-noto-cjk`` provide one; ``CHECKUP_REPORT_FONT``
may point at another TrueType/OpenType file that covers Chinese.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["CjkFont", "FontMissing", "cjk_font"]

# Preferred first: TrueType outlines subset fastest and render crisply at small sizes.
KNOWN_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
)


class FontMissing(RuntimeError):
    """No font that covers Chinese is installed: reports would show empty boxes."""


@dataclass(frozen=True)
class CjkFont:
    path: Path
    family: str


def _family_of(path: Path) -> str:
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(path))
    return str(font_manager.FontProperties(fname=str(path)).get_name())


def _fc_match() -> Path | None:
    if not shutil.which("fc-match"):
        return None
    try:
        out = subprocess.run(
            ["fc-match", "-f", "%{file}", "sans-serif:lang=zh-cn"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


def _covers_chinese(path: Path) -> bool:
    from matplotlib.ft2font import FT2Font

    try:
        face = FT2Font(str(path))
    except (OSError, RuntimeError):
        return False
    charmap = face.get_charmap()
    return all(ord(ch) in charmap for ch in "城市体检报告")


@lru_cache(maxsize=1)
def cjk_font() -> CjkFont:
    """The CJK font reports use; raises FontMissing with the install hint when none is found."""
    candidates: list[Path] = []
    if os.environ.get("CHECKUP_REPORT_FONT"):
        candidates.append(Path(os.environ["CHECKUP_REPORT_FONT"]))
    candidates.extend(Path(p) for p in KNOWN_FONTS)
    matched = _fc_match()
    if matched:
        candidates.append(matched)
    for path in candidates:
        if path.is_file() and _covers_chinese(path):
            return CjkFont(path=path, family=_family_of(path))
    raise FontMissing(
        "未找到中文字体，请安装 fonts-wqy-microhei 或 fonts-noto-cjk "
        "(no CJK font found: apt-get install fonts-wqy-microhei)"
    )

"""Draw the app icon (balanced class bars) as SVG and PNG: `python -m segbalance.resources.make_icon`."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# five class colors of Cityscapes (road, car, person, traffic sign, vegetation): bars of equal height = balanced
BARS = [(128, 64, 128), (0, 0, 142), (220, 20, 60), (220, 220, 0), (107, 142, 35)]
HEIGHTS = [0.62, 0.55, 0.60, 0.57, 0.61]
SIZE = 256


def bar_rects(size: int = SIZE) -> list[tuple[float, float, float, float, tuple[int, int, int]]]:
    margin, gap = size * 0.16, size * 0.035
    w = (size - 2 * margin - gap * (len(BARS) - 1)) / len(BARS)
    base = size * 0.80
    return [
        (margin + i * (w + gap), base - h * size * 0.75, w, h * size * 0.75, c)
        for i, (c, h) in enumerate(zip(BARS, HEIGHTS, strict=True))
    ]


def svg(size: int = SIZE) -> str:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">',
        f'<rect x="8" y="8" width="{size - 16}" height="{size - 16}" rx="44" fill="#263238"/>',
    ]
    for x, y, w, h, c in bar_rects(size):
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="6" fill="rgb{c}"/>')
    y = size * 0.80 - 0.585 * size * 0.75
    parts.append(f'<line x1="{size * 0.12:.1f}" y1="{y:.1f}" x2="{size * 0.88:.1f}" y2="{y:.1f}" '
                 'stroke="#ffffff" stroke-width="6" stroke-dasharray="14 10"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def png(path: Path, size: int) -> None:
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter, QPen

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    img = QImage(size, size, QImage.Format.Format_ARGB32)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = size / SIZE
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor("#263238"))
    p.drawRoundedRect(QRectF(8 * s, 8 * s, size - 16 * s, size - 16 * s), 44 * s, 44 * s)
    for x, y, w, h, c in bar_rects(size):
        p.setBrush(QColor(*c))
        p.drawRoundedRect(QRectF(x, y, w, h), 6 * s, 6 * s)
    pen = QPen(QColor("white"), 6 * s)
    pen.setDashPattern([14 / 6, 10 / 6])
    p.setPen(pen)
    y = size * 0.80 - 0.585 * size * 0.75
    p.drawLine(int(size * 0.12), int(y), int(size * 0.88), int(y))
    p.end()
    img.save(str(path))


if __name__ == "__main__":
    (HERE / "segbalance.svg").write_text(svg())
    for n in (256, 64):
        png(HERE / f"segbalance-{n}.png", n)
    print(f"wrote {HERE}/segbalance.svg, segbalance-256.png, segbalance-64.png")

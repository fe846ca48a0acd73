"""The Qt 5 twin of ``labelled_form.py``: labels tied to far fields by ``setBuddy``.

Run by the system Python (``/usr/bin/python3``, ``python3-pyqt5``). Same layout and output
as the GTK form: a decoy field beside "Shipping address", whose buddy is the field at the
bottom right; "Reference" names a field left of and above it; "Tracking number" names a
field that never takes the keyboard focus; "Gift wrap" names a check box, with a notes field
right beside the label. Every change is written to ``$FORM_OUT``.
"""

from __future__ import annotations

import os
import sys

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QApplication, QCheckBox, QGridLayout, QLabel, QLineEdit, QWidget

OUT = os.environ.get("FORM_OUT", "")


def main() -> int:
    app = QApplication(sys.argv)
    win = QWidget()
    win.setWindowTitle("Labelled form")
    win.resize(640, 540)
    grid = QGridLayout(win)
    grid.setHorizontalSpacing(24)
    grid.setVerticalSpacing(24)

    decoy, address, reference, tracking, notes = (QLineEdit() for _ in range(5))
    tracking.setFocusPolicy(Qt.NoFocus)
    address_label = QLabel("Shipping &address")
    address_label.setBuddy(address)
    reference_label = QLabel("&Reference")
    reference_label.setBuddy(reference)
    tracking_label = QLabel("&Tracking number")
    tracking_label.setBuddy(tracking)
    gift = QCheckBox()
    gift_label = QLabel("&Gift wrap")
    gift_label.setBuddy(gift)
    spacer = QLabel("")
    spacer.setMinimumHeight(160)

    grid.addWidget(address_label, 0, 0)
    grid.addWidget(decoy, 0, 1)
    grid.addWidget(reference, 1, 0)
    grid.addWidget(spacer, 2, 0)
    grid.addWidget(reference_label, 3, 2)
    grid.addWidget(address, 4, 2)
    grid.addWidget(tracking_label, 5, 1)
    grid.addWidget(tracking, 5, 2)
    grid.addWidget(gift_label, 6, 0)
    grid.addWidget(notes, 6, 1)
    grid.addWidget(gift, 6, 2)

    fields = {
        "decoy": decoy,
        "address": address,
        "reference": reference,
        "tracking": tracking,
        "notes": notes,
    }

    def changed(_: str) -> None:
        if OUT:
            text = "".join(f"{k}={e.text()}\n" for k, e in fields.items())
            with open(OUT + ".tmp", "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(OUT + ".tmp", OUT)

    for e in fields.values():
        e.textChanged.connect(changed)
    decoy.setFocus()
    win.show()
    return app.exec_()


if __name__ == "__main__":
    sys.exit(main())

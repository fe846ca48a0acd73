"""A GTK 3 form whose label is far from the field it names (an app under test, not our code).

Run by the system Python (``/usr/bin/python3``, ``python3-gi`` + ``gir1.2-gtk-3.0``). The
label "Shipping address" sits top left with a *decoy* entry right beside it, which is what
geometry would pick; the label names the other entry, at the bottom right, through
``set_mnemonic_widget`` (AT-SPI LABEL_FOR / LABELLED_BY). A second label, "Reference", is
tied the same way to an entry left of and above it. "Tracking number" names an entry that
never takes the keyboard focus (a click leaves focus where it was). "Gift wrap" names a
check box, with a notes entry right beside the label: it names no field. Every change of an
entry's text is written to ``$FORM_OUT`` as ``name=value`` lines, so a test reads what the
app itself holds.
"""

from __future__ import annotations

import os
import sys

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import Gtk  # noqa: E402

OUT = os.environ.get("FORM_OUT", "")


def main() -> int:
    win = Gtk.Window(title="Labelled form")
    win.set_default_size(640, 540)
    grid = Gtk.Grid(column_spacing=24, row_spacing=24, margin=16)
    win.add(grid)

    address_label = Gtk.Label(label="Shipping _address", use_underline=True, xalign=0)
    decoy = Gtk.Entry()  # right beside the label, named by nothing
    address = Gtk.Entry()
    address_label.set_mnemonic_widget(address)
    reference = Gtk.Entry()
    reference_label = Gtk.Label(label="_Reference", use_underline=True, xalign=0)
    reference_label.set_mnemonic_widget(reference)
    tracking = Gtk.Entry(can_focus=False)
    tracking_label = Gtk.Label(label="_Tracking number", use_underline=True, xalign=0)
    tracking_label.set_mnemonic_widget(tracking)
    gift = Gtk.CheckButton()
    gift_label = Gtk.Label(label="_Gift wrap", use_underline=True, xalign=0)
    gift_label.set_mnemonic_widget(gift)
    notes = Gtk.Entry()
    spacer = Gtk.Label(label="")
    spacer.set_size_request(-1, 160)

    grid.attach(address_label, 0, 0, 1, 1)
    grid.attach(decoy, 1, 0, 1, 1)
    grid.attach(reference, 0, 1, 1, 1)
    grid.attach(spacer, 0, 2, 1, 1)
    grid.attach(reference_label, 2, 3, 1, 1)
    grid.attach(address, 2, 4, 1, 1)
    grid.attach(tracking_label, 1, 5, 1, 1)
    grid.attach(tracking, 2, 5, 1, 1)
    grid.attach(gift_label, 0, 6, 1, 1)
    grid.attach(notes, 1, 6, 1, 1)
    grid.attach(gift, 2, 6, 1, 1)

    entries = {
        "decoy": decoy,
        "address": address,
        "reference": reference,
        "tracking": tracking,
        "notes": notes,
    }

    def changed(_: Gtk.Entry) -> None:
        if OUT:
            text = "".join(f"{k}={e.get_text()}\n" for k, e in entries.items())
            with open(OUT + ".tmp", "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(OUT + ".tmp", OUT)

    for e in entries.values():
        e.connect("changed", changed)
    win.connect("destroy", Gtk.main_quit)
    win.show_all()
    Gtk.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())

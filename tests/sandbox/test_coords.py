from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcorp.sandbox.coords import ScreenMap

sizes = st.tuples(st.integers(1, 4000), st.integers(1, 4000))


@given(sizes, st.integers(16, 4000), st.data())
def test_round_trip_model_to_screen_and_back_within_one_model_pixel(
    screen: tuple[int, int], long_side: int, data: st.DataObject
) -> None:
    m = ScreenMap.fit(screen, long_side)
    mx = data.draw(st.integers(0, m.model_size[0] - 1))
    my = data.draw(st.integers(0, m.model_size[1] - 1))
    sx, sy = m.to_screen(mx, my)
    bx, by = m.to_model(sx, sy)
    assert abs(bx - mx) <= 1 and abs(by - my) <= 1


@given(sizes, st.integers(16, 4000))
def test_fit_keeps_aspect_and_never_upscales(screen: tuple[int, int], long_side: int) -> None:
    m = ScreenMap.fit(screen, long_side)
    w, h = m.model_size
    assert max(w, h) <= max(long_side, 1) or (w, h) == screen
    assert w <= screen[0] and h <= screen[1]
    if max(screen) > long_side:
        assert max(w, h) == long_side
        assert abs(w / h - screen[0] / screen[1]) <= max(1 / h, 1 / w) * (1 + screen[0] / screen[1])


@given(sizes, st.integers(16, 4000), st.integers(-10_000, 10_000), st.integers(-10_000, 10_000))
def test_every_point_is_clamped_onto_the_screen(
    screen: tuple[int, int], long_side: int, x: int, y: int
) -> None:
    m = ScreenMap.fit(screen, long_side)
    sx, sy = m.to_screen(x, y)
    assert 0 <= sx < screen[0] and 0 <= sy < screen[1]
    mx, my = m.to_model(x, y)
    assert 0 <= mx < m.model_size[0] and 0 <= my < m.model_size[1]


def test_edges_and_odd_sizes() -> None:
    m = ScreenMap.fit((1281, 799), 1024)
    assert m.model_size == (1024, 639)
    assert m.to_screen(0, 0) == (0, 0)
    assert m.to_screen(1023, 638) == (1280, 798)
    assert m.to_model(1280, 798) == (1023, 638)
    same = ScreenMap((1280, 800), (1280, 800))
    assert same.to_screen(17, 33) == (17, 33) and same.to_model(17, 33) == (17, 33)
    assert ScreenMap.fit((800, 1280), 1024).model_size == (640, 1024)


@pytest.mark.parametrize("bad", [(0, 10), (10, -1), (1.5, 3)])
def test_bad_sizes_are_rejected(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="screen"):
        ScreenMap(bad, (10, 10))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ScreenMap.fit((10, 10), 0)

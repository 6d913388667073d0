import numpy as np

from memdemo.data.families import assign_families, mirror_twins, shape_descriptor


def _disc(colour, radius, size=16):
    yy, xx = np.mgrid[:size, :size]
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    image[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius**2] = colour
    return image


def test_shape_descriptor_ignores_a_uniform_recolouring():
    dark, darker = _disc((100, 100, 100), 5), _disc((40, 40, 40), 5)
    a, b = shape_descriptor(np.stack([dark, darker]))
    assert np.dot(a, b) > 0.999


def test_recoloured_twins_merge_and_distinct_shapes_do_not():
    square = np.full((16, 16, 3), 255, dtype=np.uint8)
    square[2:6, 9:15] = 0
    images = np.stack([_disc((200, 0, 0), 5), _disc((0, 0, 200), 5), square, _disc((0, 0, 0), 5)])
    families = assign_families(["red disc", "blue disc", "bar", "dot"], images)
    assert families[0] == families[1] == families[3]
    assert families[2] != families[0]


def test_names_alone_merge_and_the_size_cap_stops_shape_chaining():
    images = np.stack([_disc((0, 0, 0), 5)] * 4)
    assert assign_families(["a", "a", "b", "c"], images, max_size=2) == [0, 0, 1, 1]
    assert assign_families(["a", "a", "b", "c"], images) == [0, 0, 0, 0]


def test_mirror_twins_are_found_and_symmetric_images_are_not():
    arrow = np.full((8, 8, 3), 255, np.uint8)
    arrow[3:5, 1:7] = 0
    arrow[1:7, 6] = 0  # an arrow head on the right: its mirror points left
    symmetric = np.full((8, 8, 3), 255, np.uint8)
    symmetric[2:6, 2:6] = 0
    keys = np.stack([arrow[:, ::-1], symmetric])
    assert mirror_twins(np.stack([arrow, symmetric, arrow[:, ::-1]]), keys).tolist() == [0]

"""The figures' line styles: a reader matches lines across panels by colour."""
from maml.report import _line_styles
from maml.settings import GRID


def test_a_method_keeps_its_colour_in_every_panel_and_lines_stay_apart():
    one_panel = _line_styles([("maml", GRID), ("maml++", GRID), ("maml", "long"),
                              ("maml", "long_5w1s"), ("maml++", "best_5w1s"),
                              ("maml", "cbfinn_bn_5w1s")])
    other_panel = _line_styles([("maml++", "best_20w1s"), ("maml", GRID)])
    colours = {key[0]: style["color"] for key, style in one_panel.items()}
    assert colours["maml"] != colours["maml++"]
    assert all(other_panel[key]["color"] == colours[key[0]] for key in other_panel)
    looks = [(style["color"], style["linestyle"], style["marker"]) for style in one_panel.values()]
    assert len(set(looks)) == len(looks)
    assert one_panel["maml", GRID]["linestyle"] == "-" != one_panel["maml", "long"]["linestyle"]
    assert one_panel["maml", "long"]["label"] == "maml, long"
    assert one_panel["maml", GRID]["label"] == "maml"


def test_each_method_has_its_own_colour_whatever_families_join():
    """A family's colour is its own (presets.yaml), not its position among the families."""
    from maml.report import COLOURS
    from maml.settings import METHODS

    assert set(COLOURS) == set(METHODS) and None not in COLOURS.values()
    assert len(set(COLOURS.values())) == len(COLOURS)
    styles = _line_styles([("maml++", "grid"), ("newcomer", "grid")])
    assert styles["maml++", "grid"]["color"] == COLOURS["maml++"]
    assert styles["newcomer", "grid"]["color"] == "gray"

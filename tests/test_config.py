"""flows.yml: the three forms, options, variables, and errors that name file, line and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from hygge import config
from hygge.errors import ConfigError

USERS = Path(__file__).resolve().parent.parent / "samples" / "data" / "users.parquet"


def parse(text: str, env: dict[str, str] | None = None, base_dir: Path | None = None):
    return config.parse(text, "flows.yml", base_dir=base_dir or USERS.parent, env=env or {})


def error_of(text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, env)
    return info.value


def test_three_forms_mixed_in_one_file():
    flows = parse(
        """
homes:
  users: {type: parquet, path: users.parquet, options: {batch_size: 10}}
stores:
  users_store: {type: parquet, path: out/users, options: {compression: snappy}}
flows:
  explicit:
    home: {type: parquet, path: users.parquet}
    store: {type: parquet, path: out/a}
  shorthand:
    home: users.parquet
    store: out/b
  named:
    home: users
    store: users_store
    options: {batch_size: 5, depends_on: explicit}
"""
    ).flows
    assert [f.home.type_name for f in flows.values()] == ["parquet"] * 3
    assert flows["named"].home.settings.batch_size == 10  # the home's own setting wins
    assert flows["shorthand"].home.settings.batch_size == 100_000
    assert flows["named"].store.settings.compression == "snappy"
    assert flows["named"].options.depends_on == ["explicit"]
    assert flows["shorthand"].home.settings.path == str(USERS.parent / "users.parquet")


def test_setting_at_top_level_or_under_options_means_the_same():
    a = parse("flows: {f: {home: {type: csv, path: x.csv, delimiter: ';'}, store: o}}")
    b = parse("flows: {f: {home: {type: csv, path: x.csv, options: {delimiter: ';'}}, store: o}}")
    assert a.flows["f"].home.settings == b.flows["f"].home.settings


def test_flow_batch_size_applies_to_the_home():
    f = parse("flows: {f: {home: users.parquet, store: o, options: {batch_size: 7}}}")
    assert f.flows["f"].home.settings.batch_size == 7


def test_variables_with_defaults_and_escapes():
    f = parse(
        "flows: {f: {home: '${SRC}', store: '${OUT:-lake}/u', options: {retries: 0}}}",
        env={"SRC": "users.parquet"},
    )
    assert f.flows["f"].home.settings.path.endswith("users.parquet")
    assert f.flows["f"].store.settings.path.endswith("lake/u")
    # The raw form keeps variables unresolved (what a queue may carry).
    assert f.flows["f"].raw["home"] == "${SRC}"


def test_type_inferred_from_extension():
    f = parse("flows: {a: {home: x.csv, store: o.csv}, b: {home: y.ndjson, store: o2}}")
    assert f.flows["a"].home.type_name == "csv"
    assert f.flows["a"].store.type_name == "csv"
    assert f.flows["b"].home.type_name == "ndjson"
    assert f.flows["b"].store.type_name == "parquet"


def test_malformed_yaml_names_the_line():
    e = error_of("flows:\n  f:\n    home: [unclosed\n    store: x\n")
    assert "flows.yml:" in str(e) and "not valid YAML" in str(e)
    assert e.line is not None and e.line >= 3


def test_aliases_reuse_parts_but_may_not_explode_or_loop():
    flows = "flows:\n  a: {home: *h, store: o1}\n  b: {home: *h, store: o2}\n"
    ok = parse(f"homes: {{users: &h {{path: {USERS}}}}}\n" + flows)
    assert ok.flows["a"].home.settings.path == ok.flows["b"].home.settings.path == str(USERS)
    wide = "\n".join(f"  f{i}: {{home: *h, store: o{i}}}" for i in range(2000))
    assert len(parse(f"homes: {{users: &h {{path: {USERS}}}}}\nflows:\n{wide}\n").flows) == 2000
    bomb = "a: &a [" + ", ".join(["x"] * 100) + "]\nb: &b [" + ", ".join(["*a"] * 100)
    e = error_of(bomb + "]\nc: [" + ", ".join(["*b"] * 100) + "]\nflows: {}\n")
    assert "too many YAML aliases" in str(e) and e.line == 3
    e = error_of("x: &c [1, *c]\nflows: {}\n")
    assert "refers to a node that contains it" in str(e) and e.line == 1


def test_unknown_type_suggests_nearest():
    e = error_of("flows:\n  f:\n    home: {type: parqet, path: x}\n    store: o\n")
    assert e.line == 3
    assert "unknown home type 'parqet'" in str(e)
    assert "did you mean 'parquet'" in str(e)
    assert "flow 'f'" in str(e)


def test_missing_required_key():
    e = error_of("flows:\n  f:\n    home: {type: parquet}\n    store: o\n")
    assert "missing required key 'path'" in str(e) and e.flow == "f"


def test_missing_store():
    e = error_of("flows:\n  f:\n    home: users.parquet\n")
    assert "missing required key 'store'" in str(e)


def test_unknown_key_suggests_nearest_and_points_at_its_line():
    e = error_of(
        "flows:\n  f:\n    home: users.parquet\n    store:\n      path: o\n"
        "      options:\n        compresion: zstd\n"
    )
    assert "unknown key 'compresion'" in str(e)
    assert "did you mean 'compression'" in str(e)
    assert e.line == 7


def test_unknown_flow_option():
    e = error_of("flows:\n  f:\n    home: users.parquet\n    store: o\n    retires: 2\n")
    assert "unknown key 'retires'" in str(e) and "did you mean 'retries'" in str(e)
    assert e.line == 5


def test_bad_value_lists_choices():
    e = error_of("flows: {f: {home: users.parquet, store: {path: o, mode: apend}}}")
    assert "apend" in str(e) and "did you mean 'append'" in str(e)


def test_undefined_variable():
    e = error_of("flows:\n  f:\n    home: users.parquet\n    store: '${LAKE}/x'\n")
    assert "environment variable LAKE is not set" in str(e)
    assert "${LAKE:-" in str(e)
    assert e.line == 4


def test_flow_naming_a_home_that_does_not_exist():
    e = error_of(
        "homes: {users: {type: parquet, path: users.parquet}}\n"
        "flows:\n  f:\n    home: userz\n    store: o\n"
    )
    assert "no home named 'userz'" in str(e) and "did you mean 'users'" in str(e)
    assert e.line == 4


def test_depends_on_cycle():
    e = error_of(
        "flows:\n"
        "  a: {home: users.parquet, store: a, options: {depends_on: [c]}}\n"
        "  b: {home: users.parquet, store: b, options: {depends_on: [a]}}\n"
        "  c: {home: users.parquet, store: c, options: {depends_on: [b]}}\n"
    )
    assert "cycle" in str(e) and "a -> c -> b -> a" in str(e)


def test_depends_on_unknown_flow():
    e = error_of("flows: {a: {home: users.parquet, store: a, depends_on: [b]}}")
    assert "unknown flow 'b'" in str(e)


def test_empty_and_non_mapping_files():
    assert "empty" in str(error_of(""))
    assert "unknown section 'flow'" in str(error_of("flow: {}"))
    assert "did you mean 'flows'" in str(error_of("flow: {}"))


def test_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="file not found"):
        config.load(tmp_path / "nope.yml")


def test_parse_flow_from_raw_form_resolves_where_it_runs():
    f = parse("flows: {f: {home: '${SRC}', store: out}}", env={"SRC": "users.parquet"})
    raw = f.flows["f"].raw
    spec = config.parse_flow("f", raw, base_dir=USERS.parent, env={"SRC": "users.parquet"})
    assert spec.home.settings.path == str(USERS)
    with pytest.raises(ConfigError, match="SRC is not set"):
        config.parse_flow("f", raw, base_dir=USERS.parent, env={})

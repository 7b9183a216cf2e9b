"""The settings layer: the schema holds every default, classes match it, result vs compute; code versions."""
import dataclasses
import textwrap

import pytest
import yaml

from divcoeff import settings as st
from divcoeff.codeversion import code_version, module_closure
from divcoeff.config import ConfigError

SECTIONS = [st.TrainSettings, st.DiversitySettings, st.EvaluationSettings, st.ReportSettings, st.OwnTestSettings,
            st.FetchSettings]


def all_settings_classes(cls):
    yield cls
    for f in dataclasses.fields(cls):
        if isinstance(f.type, type) and issubclass(f.type, st.Settings):
            yield from all_settings_classes(f.type)


def test_every_settings_class_matches_its_schema_section_and_has_no_defaults_of_its_own():
    for top in SECTIONS:
        for cls in all_settings_classes(top):
            props = set(st.subschema(cls.SECTION)["properties"])
            fields = dataclasses.fields(cls)
            assert {f.name for f in fields} == props, (cls.__name__, cls.SECTION)
            # Defaults live in the schema only.
            assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                       for f in fields), cls.__name__
    stages = {"train": st.TrainCompute, "diversity": st.DiversityCompute, "evaluate": st.EvaluateCompute,
              "probe": st.TrainCompute}
    for stage, cls in stages.items():
        props = set(st.subschema(f"compute.{stage}")["properties"]) | {"device"}
        assert {f.name for f in dataclasses.fields(cls)} == props, stage


def test_every_schema_key_of_a_stage_has_a_default_or_is_required_and_compute_keys_say_what_they_do():
    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            here = f"{path}.{key}"
            assert "default" in sub or key in node.get("required", []), f"{here}: no default and not required"
            if sub.get("type") == "object":
                walk(sub, here)
    for section in ("training", "diversity", "evaluation", "report", "compute", "fetch", "own_test"):
        walk(st.subschema(section), section)
    compute = st.subschema("compute")
    assert compute["description"] and all(sub["properties"][k].get("description")
                                          for sub in compute["properties"].values() if "properties" in sub
                                          for k in sub["properties"])


def test_partial_mappings_take_the_schemas_defaults(repo):
    schema = yaml.safe_load((repo / "config/schemas/config.schema.yaml").read_text())
    t = st.TrainSettings.from_config({"steps": 7})
    assert t.steps == 7 and t.lr == schema["properties"]["training"]["properties"]["lr"]["default"]
    assert t.maml.inner_steps == schema["properties"]["training"]["properties"]["maml"]["properties"][
        "inner_steps"]["default"]
    d = st.DiversitySettings.from_config({"method": "exact", "exact": {"label_draws": 0}})
    assert d.exact.label_draws == 0 and d.exact.head_epochs == 10 and d.probe.weights == "imagenet"
    assert d.head_epochs == 10 and isinstance(d.probe, st.ProbeSettings)
    c = st.compute_settings({"device": "cpu", "evaluate": {"batch_size": 32}})
    assert c.evaluate == st.EvaluateCompute(device="cpu", threads=1, batch_size=32, maml_chunk_size=0)
    assert c.diversity.device == "cpu" and c.diversity.engine == "auto"
    # Frozen, hashable, and as_dict round-trips.
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.steps = 8
    assert st.TrainSettings.from_config(t.as_dict()) == t and hash(t)


def test_bad_values_name_the_field():
    with pytest.raises(ConfigError, match=r"training.*maml.ways: 'five' is not of type 'integer'"):
        st.TrainSettings.from_config({"maml": {"ways": "five"}}, "config training")
    with pytest.raises(ConfigError, match="compute.*'bogus' is not one of"):
        st.compute_settings({"diversity": {"engine": "bogus"}})
    with pytest.raises(ConfigError, match="'batch_size' was unexpected"):
        st.EvaluationSettings.from_config({"name": "x", "benchmarks": ["b"], "batch_size": 64})


def test_evaluation_params_split_by_family():
    ev = st.EvaluationSettings.from_config({"name": "x", "benchmarks": ["b"], "logreg_C": 0.5})
    pt, maml = ev.for_family("pt"), ev.for_family("maml")
    assert pt["logreg_C"] == 0.5 and "maml" not in pt
    assert "logreg_C" not in maml and maml["maml"]["inner_steps"] == ev.maml.inner_steps
    assert pt["episodes"] == maml["episodes"] == ev.episodes


def test_maml_inner_step_counts_name_the_methods_and_the_protocol_defaults_to_clean():
    one = st.EvaluationSettings.from_config({"name": "x", "benchmarks": ["b"]})
    assert one.protocol == "clean" and one.maml.methods() == {"maml": 10}
    two = st.EvaluationSettings.from_config({"name": "x", "benchmarks": ["b"], "protocol": "published",
                                             "maml": {"inner_steps": [5, 10]}})
    assert two.published and two.maml.methods() == {"maml5": 5, "maml10": 10}
    assert two.for_family("maml")["maml"]["inner_steps"] == [5, 10] and two.for_family("pt")["protocol"] == "published"
    with pytest.raises(ConfigError, match="inner_steps"):
        st.EvaluationSettings.from_config({"name": "x", "benchmarks": ["b"], "maml": {"inner_steps": [5, 5]}})


def test_extra_probes_each_get_their_own_job_params():
    d = st.DiversitySettings.from_config({"probe": {"normalisation": "dataset", "image_size": None},
                                          "probes": {"r34": {"arch": "resnet34", "weights": "random",
                                                             "normalisation": "dataset"}}})
    assert list(d.probes) == ["r34"] and d.probes["r34"].pool.steps == 400  # defaults filled in
    main, extra = d.job_params(), d.job_params("r34")
    assert "probes" not in main and main["probe"]["arch"] == "resnet18" and main["probe"]["image_size"] is None
    assert extra["probe"]["arch"] == "resnet34" and {k: v for k, v in extra.items() if k != "probe"} == \
        {k: v for k, v in main.items() if k != "probe"}
    assert d.probes["r34"].label == "resnet34-random" and d.probe.label == "resnet18-imagenet"
    with pytest.raises(ConfigError, match="normalisation"):
        st.DiversitySettings.from_config({"probes": {"r34": {"normalisation": "dataset"}}})
    with pytest.raises(ConfigError, match="pool"):
        st.DiversitySettings.from_config({"probe": {"weights": "pool", "normalisation": "dataset"}})


def test_own_test_takes_the_scoring_of_evaluation_and_the_data_of_the_train_set():
    ev = st.EvaluationSettings.from_config({"name": "held", "benchmarks": ["a", "b"], "protocol": "published",
                                            "episodes": 600, "seed": 21})
    own = st.OwnTestSettings.from_config({"enabled": True, "episodes": 300, "episodes_per_train_set": {"mi": 500}})
    spec = st.train_set_spec({"benchmarks": ["mi"], "mixture_over": "benchmark", "image_size": 32,
                              "normalisation": {"mi": None}})
    s = own.evaluation(ev, "mi", spec)
    assert (s.name, s.benchmarks, s.split, s.episodes, s.seed, s.image_size) == ("own-test.mi", ("mi",), "test", 500,
                                                                                 22, 32)
    assert s.protocol == "published" and s.view_spec()["normalisation"] == {"mi": None}
    assert own.episodes_of("other") == 300


def test_compute_settings_come_back_from_job_resources():
    c = st.compute_settings({"evaluate": {"batch_size": 64}}).evaluate

    class Resources:  # what Snakemake hands a script, after a profile's set-resources
        device, batch_size, maml_chunk_size, mem_mb = "cpu", 1024, 4, 1000

    assert c.resources() == {"device": "auto", "batch_size": 64, "maml_chunk_size": 0}
    job = st.EvaluateCompute.from_job(Resources(), threads=3)
    assert job == st.EvaluateCompute(device="cpu", threads=3, batch_size=1024, maml_chunk_size=4)


# ----------------------------------------------------------------------------------- code versions

def _package(tmp_path, files):
    root = tmp_path / "divcoeff"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_code_version_follows_the_import_closure_and_ignores_docstrings(tmp_path):
    files = {
        "__init__.py": "",
        "a.py": '"""A."""\nfrom divcoeff import b\n\ndef f():\n    """doc"""\n    return b.g() + 1\n',
        "b.py": "from .sub import c\n\ndef g():\n    return c.h()\n",
        "sub/__init__.py": "",
        "sub/c.py": "def h():\n    return 2\n",
        "unrelated.py": "X = 1\n",
    }
    root = _package(tmp_path, files)
    assert sorted(module_closure("divcoeff.a", root=root)) == ["divcoeff", "divcoeff.a", "divcoeff.b",
                                                               "divcoeff.sub", "divcoeff.sub.c"]
    base = code_version.__wrapped__("divcoeff.a", root=root)
    st_code = code_version.__wrapped__

    def version_after(name, text):
        tmp = tmp_path / f"v{len(list(tmp_path.iterdir()))}"
        r = _package(tmp, {**files, name: text})
        return st_code("divcoeff.a", root=r)

    assert version_after("a.py", files["a.py"].replace('"""doc"""', '"""other words"""')) == base
    assert version_after("a.py", "# a comment\n" + files["a.py"]) == base
    assert version_after("unrelated.py", "X = 2\n") == base
    assert version_after("sub/c.py", "def h():\n    return 3\n") != base      # two imports away
    assert version_after("b.py", files["b.py"] + "\nY = 0\n") != base


def test_every_rule_names_library_entries_that_exist():
    from divcoeff.codeversion import RULE_ENTRIES, rule_code_versions

    for rule, entries in RULE_ENTRIES.items():
        closure = module_closure(*entries)
        assert all(e in closure for e in entries), (rule, entries)
    versions = rule_code_versions()
    assert len(set(versions.values())) == len(versions)  # each rule's closure is its own


def test_fetch_settings_are_typed_and_take_the_schemas_defaults(repo):
    schema = yaml.safe_load((repo / "config/schemas/config.schema.yaml").read_text())["properties"]["fetch"]
    f = st.fetch_settings({"retries": 0, "contact": "mailto:a@b.c"})
    assert isinstance(f, st.FetchSettings) and (f.retries, f.contact) == (0, "mailto:a@b.c")
    assert f.zenodo_url == schema["properties"]["zenodo_url"]["default"]
    assert [dict(w) for w in f.zenodo_pace] == schema["properties"]["zenodo_pace"]["default"]
    assert st.fetch_settings(f) is f
    with pytest.raises(ConfigError, match="retries"):
        st.fetch_settings({"retries": -1})

"""One settings layer: the validated config, as frozen settings per stage.

The schema (``config/schemas/config.schema.yaml``) holds every default and the description of
every key; nothing else in the library defaults a config key. :func:`complete` fills a
mapping (the whole config, one section, or one entry of ``train_sets``/``benchmarks``) with
the schema's defaults and checks it; the classes below are built only from completed mappings,
so a partial mapping in a test or a library call gets the same defaults as the workflow.

Each stage has two kinds of settings:

* **result** settings change what a stage computes (``training``, ``diversity``, ``evaluation``,
  ``report``). Rules pass them as ``params``, Snakemake's rerun trigger: changing one reruns
  exactly the jobs it affects.
* **compute** settings change only how (``compute:``: device, threads, batch and chunk sizes,
  the Task2Vec engine). Rules hand them to jobs as ``threads`` and ``resources``, which are not a
  rerun trigger, and a profile can override them per rule (``set-threads``,
  ``set-resources: evaluate: {batch_size: 1024}``). Results agree to float rounding whatever
  they are.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from divcoeff.config import ConfigError, check_against_schema


def _schema_dir() -> Path:
    """Package data (divcoeff/schemas links config/schemas; a wheel holds copies), so an installed library
    needs no workflow folder; else config/schemas beside the package (a copy or checkout without the link)."""
    package = Path(__file__).resolve().parent
    return package / "schemas" if (package / "schemas").is_dir() else package.parent / "config" / "schemas"


SCHEMA_PATH = _schema_dir() / "config.schema.yaml"
SHEET_SCHEMA_PATH = SCHEMA_PATH.with_name("checkpoints.schema.yaml")


@functools.cache
def config_schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return yaml.safe_load(f)


def subschema(path: str) -> dict:
    """The schema of a dotted config path: ``training``, ``compute.evaluate``, ``train_sets.*``
    (an entry of a mapping section), or ``""`` for the whole config."""
    node = config_schema()
    for part in filter(None, path.split(".")):
        node = node["additionalProperties"] if part == "*" else node["properties"][part]
    return node


def complete(path: str, values: Mapping | None, where: str | None = None) -> dict:
    """A deep copy of `values` checked against the schema at `path` and filled with its defaults.

    Raises ConfigError naming `where` (default: the path) and the field."""
    data = copy.deepcopy(dict(values or {}))
    return check_against_schema(data, subschema(path), where or (f"config {path}" if path else "config"))


def canonical(value: Any) -> Any:
    """Mappings with sorted keys, at every depth. Snakemake compares params by their text, so the
    order of keys in a config file (which yaml.safe_dump, for one, sorts) must not rerun a job."""
    if isinstance(value, Mapping):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


# ------------------------------------------------------------------------------ building blocks

class Settings:
    """A frozen dataclass built from a completed mapping; nested settings are built recursively,
    lists become tuples (hashable, immutable). Keys must match the fields exactly: a test checks
    that every class agrees with its schema section."""

    SECTION: typing.ClassVar[str] = ""  # the schema path of a top-level section class

    @classmethod
    def from_config(cls, mapping: Mapping | None = None, where: str | None = None):
        """Complete `mapping` from the schema at ``SECTION``, build, then run the section's own checks."""
        where = where or f"config {cls.SECTION}"
        obj = cls.build(complete(cls.SECTION, mapping, where), where)
        obj.check(where)
        return obj

    def check(self, where: str) -> None:
        """Checks a schema cannot express (none by default)."""

    @classmethod
    def build(cls, mapping: Mapping[str, Any], where: str = "config"):
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(mapping) - set(names))
        missing = [n for n in names if n not in mapping]
        if unknown or missing:
            raise ConfigError(f"{where}: unknown key(s) {unknown}" if unknown else f"{where}: missing key(s) {missing}")
        values = {}
        for name in names:
            value, hint = mapping[name], hints[name]
            if isinstance(hint, type) and issubclass(hint, Settings):
                value = hint.build(value, f"{where}.{name}")
            else:
                value = frozen(value)
            values[name] = value
        return cls(**values)

    def as_dict(self) -> dict:
        """Plain values (lists and dicts, not tuples and mapping proxies): what params, JSON files and hashes see."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def frozen(value: Any) -> Any:
    """Lists -> tuples and mappings -> read-only mappings (sorted keys), at every depth."""
    if isinstance(value, Mapping):
        return types.MappingProxyType({k: frozen(value[k]) for k in sorted(value)})
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    return value


def plain(value: Any) -> Any:
    """The inverse of :func:`frozen` (settings become their as_dict)."""
    if isinstance(value, Settings):
        return value.as_dict()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


# ------------------------------------------------------------------------------------ training

BN_MODES = ("batch", "running")


@dataclass(frozen=True)
class MamlTrainSettings(Settings):
    SECTION = "training.maml"

    ways: int
    shots: int
    queries: int
    meta_batch: int
    inner_steps: int
    inner_lr: float
    first_order: bool
    bn_mode: str

    @property
    def images_per_task(self) -> int:
        return self.ways * (self.shots + self.queries)


@dataclass(frozen=True)
class ReplicateSettings(Settings):
    SECTION = "training.replicates"

    pt: int
    maml: int
    control: int


@dataclass(frozen=True)
class ConvergenceSettings(Settings):
    """``training.convergence``: the one stopping rule (divcoeff.training.convergence); the cap is ``training.steps``."""

    SECTION = "training.convergence"

    enabled: bool
    window: int
    check_every: int
    min_improvement: float
    min_steps: int


@dataclass(frozen=True)
class TrainSettings(Settings):
    """``training:`` What is held fixed across training sets and families: architecture
    (widths, drop_rate, dropblock_size), optimiser (Adam lr, weight_decay), steps and
    images_per_step. PT draws images_per_step images per step; MAML draws meta_batch tasks of
    ways * (shots + queries) images, which must add up to the same number (checked)."""

    SECTION = "training"

    arch: str
    widths: tuple[int, ...]
    drop_rate: float
    dropblock_size: int
    steps: int
    convergence: ConvergenceSettings
    images_per_step: int
    lr: float
    weight_decay: float
    seed: int
    replicates: ReplicateSettings
    replicate_group: int
    maml: MamlTrainSettings

    def check(self, where: str) -> None:
        per_step = self.maml.meta_batch * self.maml.images_per_task
        if per_step != self.images_per_step:
            m = self.maml
            raise ConfigError(
                f"{where}: images_per_step is {self.images_per_step} but MAML draws maml.meta_batch * maml.ways * "
                f"(maml.shots + maml.queries) = {m.meta_batch} * {m.ways} * ({m.shots} + {m.queries}) = {per_step} "
                "images per step; make them equal so that PT and MAML see the same number of images")

    def checkpoint_params(self) -> dict:
        """What one checkpoint's training depends on: everything but the number of replicates
        (raising it adds checkpoints and must not retrain the others) and how they are grouped
        into jobs (a group trains its replicates one by one, each as it would alone)."""
        d = self.as_dict()
        del d["replicates"], d["replicate_group"]
        return d

    def architecture_params(self) -> dict:
        """What an untrained control depends on: the network and the seed key, not the optimiser."""
        return {k: v for k, v in self.as_dict().items() if k in ("arch", "widths", "drop_rate", "dropblock_size", "seed")}

    @property
    def model_kwargs(self) -> dict:
        return {"widths": self.widths, "drop_rate": self.drop_rate, "dropblock_size": self.dropblock_size}


# ----------------------------------------------------------------------------------- diversity

@dataclass(frozen=True)
class ProbePoolSettings(Settings):
    SECTION = "diversity.probe.pool"

    benchmarks: tuple[str, ...]
    split: str
    labels: str
    steps: int
    batch_size: int
    lr: float
    weight_decay: float


@dataclass(frozen=True)
class ProbeSettings(Settings):
    SECTION = "diversity.probe"

    kind: str
    arch: str
    weights: str
    image_size: int | None
    checkpoint: str | None
    normalisation: str
    pool: ProbePoolSettings

    @property
    def pretrained_here(self) -> bool:
        return self.kind == "torchvision" and self.weights == "pool"

    @property
    def label(self) -> str:
        """A short name for tables: resnet18-imagenet, resnet34-random, checkpoint-<name>."""
        if self.kind == "checkpoint":
            return f"checkpoint-{self.checkpoint}"
        return f"{self.arch}-{self.weights}"

    def check(self, where: str) -> None:
        if self.normalisation == "dataset" and self.pretrained_here:
            raise ConfigError(f"{where}: normalisation: dataset needs a probe that takes the datasets' normalised "
                              "images; a probe pretrained here (weights: pool) learnt ImageNet-normalised ones")


@dataclass(frozen=True)
class FaithfulSettings(Settings):
    SECTION = "diversity.faithful"

    head_epochs: int
    epoch_images: int
    batch_size: int
    lr: float
    weight_decay: float
    fisher_epochs: int


@dataclass(frozen=True)
class ExactSettings(Settings):
    SECTION = "diversity.exact"

    head_epochs: int
    label_draws: int


@dataclass(frozen=True)
class DiversitySettings(Settings):
    """``diversity:`` the Task2Vec coefficient of each training set."""

    SECTION = "diversity"

    tasks: int
    ways: int
    shots: int
    queries: int
    seed: int
    method: str
    probe: ProbeSettings
    faithful: FaithfulSettings
    exact: ExactSettings
    probes: types.MappingProxyType
    bootstrap: int
    noise_floor_tasks: int

    @classmethod
    def build(cls, mapping: Mapping[str, Any], where: str = "config"):
        probes = mapping.get("probes") or {}
        built = {name: ProbeSettings.build(spec, f"{where}.probes.{name}") for name, spec in probes.items()}
        obj = super().build({**mapping, "probes": {}}, where)
        return dataclasses.replace(obj, probes=types.MappingProxyType(dict(sorted(built.items()))))

    def check(self, where: str) -> None:
        self.probe.check(f"{where}.probe")
        for name, probe in self.probes.items():
            probe.check(f"{where}.probes.{name}")
            if probe.normalisation != self.probe.normalisation:
                raise ConfigError(f"{where}.probes.{name}: normalisation {probe.normalisation!r} differs from "
                                  f"diversity.probe's {self.probe.normalisation!r}; every probe reads the same train "
                                  "set views, so they must agree")
            if probe.pretrained_here:
                raise ConfigError(f"{where}.probes.{name}: weights: pool is only supported for diversity.probe")

    @property
    def head_epochs(self) -> int:
        """Epochs of the published head step under the chosen method."""
        return self.exact.head_epochs if self.method == "exact" else self.faithful.head_epochs

    def for_probe(self, name: str | None = None) -> "DiversitySettings":
        """The settings of one probe's coefficients: `probe` replaced by probes[name] (None: the main
        probe), no other probes (a job's params then change only with what it computes)."""
        if name is not None and name not in self.probes:
            raise ConfigError(f"diversity.probes: no probe named {name!r} (have {', '.join(self.probes) or 'none'})")
        probe = self.probe if name is None else self.probes[name]
        return dataclasses.replace(self, probe=probe, probes=types.MappingProxyType({}))

    def job_params(self, name: str | None = None) -> dict:
        """What one probe's diversity job depends on (as_dict of for_probe, without the empty probes)."""
        d = self.for_probe(name).as_dict()
        del d["probes"]
        return d


# ---------------------------------------------------------------------------------- evaluation

@dataclass(frozen=True)
class MamlEvalSettings(Settings):
    SECTION = "evaluation.maml"

    inner_steps: int | tuple[int, ...]
    inner_lr: float
    first_order: bool
    bn_mode: str
    calibration_episodes: int

    def methods(self) -> dict[str, int]:
        """Method name -> inner steps: {"maml": k} for one count, {"maml5": 5, "maml10": 10} for a list."""
        if isinstance(self.inner_steps, tuple):
            return {f"maml{k}": int(k) for k in self.inner_steps}
        return {"maml": int(self.inner_steps)}


@dataclass(frozen=True)
class EvaluationSettings(Settings):
    """``evaluation:`` the one held-out view, its episodes and how checkpoints are scored."""

    SECTION = "evaluation"

    name: str
    benchmarks: tuple[str, ...]
    split: str
    mixture_over: str
    image_size: int | None
    ways: int
    shots: int
    queries: int
    episodes: int
    seed: int
    pt_methods: tuple[str, ...]
    logreg_C: float
    calibrate_temperature: bool
    calibration_folds: int
    resize_to_checkpoint: bool
    allow_overlap: bool
    protocol: str
    dropout_seed: int
    normalisation: types.MappingProxyType
    data_augmentation: types.MappingProxyType
    maml: MamlEvalSettings

    # What each family's evaluation reads; the rest of the section does not change its results.
    _COMMON = ("name", "benchmarks", "split", "mixture_over", "image_size", "ways", "shots", "queries", "episodes",
               "seed", "calibrate_temperature", "calibration_folds", "resize_to_checkpoint", "protocol",
               "dropout_seed", "normalisation")
    _FAMILY = {"pt": ("pt_methods", "logreg_C"), "maml": ("maml",)}

    @property
    def published(self) -> bool:
        return self.protocol == "published"

    def for_family(self, family: str) -> dict:
        """The settings one family's evaluation depends on: a PT job's params do not change when a MAML
        setting does, and the other way round (as a rerun trigger, exactly what it affects).
        ``data_augmentation`` only where set (it names checkpoints; empty, it changes nothing)."""
        d = self.as_dict()
        out = {k: d[k] for k in self._COMMON + self._FAMILY[family]}
        return {**out, "data_augmentation": d["data_augmentation"]} if d["data_augmentation"] else out

    def view_spec(self) -> dict:
        """The held-out view's spec, in the form of a train set's (build_view)."""
        spec = {"kind": "eval", "benchmarks": list(self.benchmarks), "split": self.split,
                "mixture_over": self.mixture_over}
        if self.image_size is not None:
            spec["image_size"] = self.image_size
        if self.normalisation:
            spec["normalisation"] = plain(self.normalisation)
        return spec


# ------------------------------------------------------------------------------------ own test

OWN_TEST = "own-test"  # the evaluation label of the published tables' evaluation, and its results folder


@dataclass(frozen=True)
class OwnTestSettings(Settings):
    """``own_test:`` the published tables' evaluation: each checkpoint on the test split of its own
    training set (REFERENCE section 7), scored as ``evaluation:`` says."""

    SECTION = "own_test"

    enabled: bool
    split: str
    episodes: int
    episodes_per_train_set: types.MappingProxyType
    seed: int

    @staticmethod
    def view_name(train_set: str) -> str:
        return f"{OWN_TEST}.{train_set}"

    def episodes_of(self, train_set: str) -> int:
        return int(self.episodes_per_train_set.get(train_set, self.episodes))

    def evaluation(self, scoring: EvaluationSettings, train_set: str, spec: Mapping) -> EvaluationSettings:
        """`scoring` (the config's evaluation section) with the data replaced by `train_set`'s test view:
        the train set's benchmarks, mixture and image size (its `spec`, completed), this section's split,
        episodes and seed."""
        return dataclasses.replace(
            scoring, name=self.view_name(train_set), benchmarks=tuple(spec["benchmarks"]), split=self.split,
            mixture_over=spec["mixture_over"], image_size=spec.get("image_size"), episodes=self.episodes_of(train_set),
            seed=self.seed, normalisation=frozen(spec.get("normalisation") or {}))


# ------------------------------------------------------------------------------------- domains

@dataclass(frozen=True)
class DomainSettings(Settings):
    """``domains:`` the domain distance matrix (rule domain_distances) and selection by it."""

    SECTION = "domains"

    tasks: int
    seed: int
    exact_limit: int


# -------------------------------------------------------------------------------------- report

@dataclass(frozen=True)
class ReportSettings(Settings):
    SECTION = "report"

    bootstrap: int
    seed: int
    pt_method: str
    x_ci: str
    dpi: int
    published: str | None


# ------------------------------------------------------------------------------------- compute

@dataclass(frozen=True)
class StageCompute(Settings):
    """How one stage's jobs compute. `device` comes from ``compute.device``, the rest from the
    stage's own entry; in a job, :meth:`from_job` reads them back from the job's resources."""

    device: str
    threads: int

    def resources(self) -> dict:
        """What a rule declares as `resources:` (everything but threads)."""
        return {k: v for k, v in self.as_dict().items() if k != "threads"}

    @classmethod
    def from_job(cls, resources: Any, threads: int):
        """The job's compute settings from Snakemake's `resources` (profiles may have overridden them)."""
        values = {f.name: getattr(resources, f.name) for f in dataclasses.fields(cls) if f.name != "threads"}
        return cls.build({**values, "threads": int(threads)}, "job resources")


@dataclass(frozen=True)
class TrainCompute(StageCompute):
    pass


@dataclass(frozen=True)
class DiversityCompute(StageCompute):
    task_batch: int
    engine: str
    exact_chunk_size: int


@dataclass(frozen=True)
class EvaluateCompute(StageCompute):
    batch_size: int
    maml_chunk_size: int


@dataclass(frozen=True)
class ComputeSettings:
    train: TrainCompute
    diversity: DiversityCompute
    evaluate: EvaluateCompute
    probe: TrainCompute


def compute_settings(compute: Mapping | None = None, where: str = "config compute") -> ComputeSettings:
    """``compute:`` per stage, each with the global device."""
    c = complete("compute", compute, where)
    device = c.pop("device")
    kinds = {"train": TrainCompute, "diversity": DiversityCompute, "evaluate": EvaluateCompute, "probe": TrainCompute}
    return ComputeSettings(**{stage: kind.build({"device": device, **c[stage]}, f"{where}.{stage}")
                              for stage, kind in kinds.items()})


# ------------------------------------------------------------------------------------ fetch

@dataclass(frozen=True)
class FetchSettings(Settings):
    """``fetch:`` how files are downloaded and unpacked (retries, Zenodo's pace, the Hub, archive
    caps), never what: a fetched file is defined by its checksum."""

    SECTION = "fetch"

    zenodo_url: str
    retries: int
    timeout_s: float
    backoff_s: float
    max_backoff_s: float
    hf_endpoint: str | None
    hf_cache: str | None
    contact: str | None
    zenodo_pace: tuple                  # ({requests, window_s}, ...), read-only mappings
    zenodo_token_pace: tuple
    zenodo_pace_file: str | None
    zenodo_max_wait_s: float
    archive_max_bytes: int
    archive_max_ratio: float
    max_bytes: int                      # a url checkpoint's cap (a row's size column is exact)
    local_roots: tuple                  # folders besides the project's that file rows may copy from


# ------------------------------------------------------------------------------------ workflow

@dataclass(frozen=True)
class WorkflowSettings:
    """Everything the rules read, built once from the validated config."""

    seed: int
    checkpoint_sheet: str
    benchmarks: types.MappingProxyType
    train_sets: types.MappingProxyType
    training: TrainSettings
    diversity: DiversitySettings
    evaluation: EvaluationSettings
    report: ReportSettings
    compute: ComputeSettings
    fetch: FetchSettings
    own_test: OwnTestSettings
    domains: DomainSettings


def workflow_settings(config: Mapping, where: str = "config") -> WorkflowSettings:
    """The one function that turns a (validated, default-filled) config into frozen settings."""
    c = complete("", config, where)
    return WorkflowSettings(
        seed=c["seed"], checkpoint_sheet=c["checkpoint_sheet"],
        benchmarks=types.MappingProxyType(canonical(c["benchmarks"])),
        train_sets=types.MappingProxyType(canonical(c["train_sets"])),
        training=TrainSettings.from_config(c["training"], f"{where}: training"),
        diversity=DiversitySettings.from_config(c["diversity"], f"{where}: diversity"),
        evaluation=EvaluationSettings.from_config(c["evaluation"], f"{where}: evaluation"),
        report=ReportSettings.from_config(c["report"], f"{where}: report"),
        compute=compute_settings(c["compute"], f"{where}: compute"),
        fetch=FetchSettings.from_config(c["fetch"], f"{where}: fetch"),
        own_test=OwnTestSettings.from_config(c["own_test"], f"{where}: own_test"),
        domains=DomainSettings.from_config(c["domains"], f"{where}: domains"))


def fetch_settings(values: "FetchSettings | Mapping | None" = None, where: str = "config fetch") -> FetchSettings:
    """The ``fetch:`` settings: as given, or built from a (partial) mapping with the schema's defaults."""
    return values if isinstance(values, FetchSettings) else FetchSettings.from_config(values, where)


def benchmark_spec(spec: Mapping, where: str = "config benchmarks") -> dict:
    """A ``benchmarks:`` entry with the schema's defaults (glyph or published-files branch)."""
    return complete("benchmarks.*", spec, where)


def train_set_spec(spec: Mapping, where: str = "config train_sets") -> dict:
    """A ``train_sets:`` entry with the schema's defaults."""
    return complete("train_sets.*", spec, where)


def reader_spec(spec: Mapping, where: str = "config benchmarks") -> dict:
    """A published benchmark's reader options (its entry without `source` and `files`, as the
    index rule passes it) with the schema's defaults."""
    # The schema's branch for files-based benchmarks is chosen by `source`; any files source selects it.
    stub = {"source": "file", "files": [{"name": "stub", "uri": "stub"}]}
    full = complete("benchmarks.*", {**spec, **stub}, where)  # the stub last: its uri fits only source file
    return {k: v for k, v in full.items() if k not in stub}

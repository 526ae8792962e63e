"""The CLI's --help works everywhere and the README documents exactly the real CLI."""
from __future__ import annotations

import argparse
import re
import shlex

from conftest import REPO, run_cli
from kgrec.cli import build_parser

README = (REPO / "README.md").read_text(encoding="utf-8")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings if o not in ("-h", "--help")}


def test_help_of_every_command():
    assert run_cli("--help").returncode == 0
    for name in _subparsers(build_parser()):
        out = run_cli(name, "--help")
        assert out.returncode == 0, (name, out.stderr)
        assert "usage: kgrec " + name in out.stdout


def test_train_py_help():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "train.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "--epochs" in out.stdout


def _reference_sections() -> dict[str, str]:
    ref = README.split("## CLI reference", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### `kgrec ([a-z0-9-]+)`\s*$", ref, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_readme_cli_reference_matches_parser():
    sections = _reference_sections()
    subs = _subparsers(build_parser())
    assert set(sections) == set(subs), "README CLI reference and the real subcommands differ"
    for name, text in sections.items():
        documented = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-k)(?![\w-])", text))
        real = _flags(subs[name])
        assert documented == real, f"kgrec {name}: README {sorted(documented ^ real)} differ from the parser"


def test_readme_quickstart_commands_are_real():
    quick = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", quick, flags=re.S)
    assert len(blocks) == 2, "the quickstart has exactly two commands"
    setup, test = (b.strip() for b in blocks)
    assert setup.endswith(".venv/bin/python train.py") and "pip install -e '.[dev]'" in setup
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert test in ci, ".ci/run must run exactly the README's test command"
    parser = build_parser()
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.strip().replace("\\\n", " ").splitlines():
            words = shlex.split(line.split("#", 1)[0])
            if words[:1] == [".venv/bin/kgrec"]:
                parser.parse_args([w for w in words[1:]])  # raises SystemExit on unknown flags
            if "train.py" in words:  # python train.py …, torchrun … train.py …
                parser.parse_args(["train", *words[words.index("train.py") + 1:]])


def test_registry_names_match_the_config():
    from kgrec.config import BASELINES, GNN_MODELS, MODEL_NAMES, TRAINED_MODELS
    from kgrec.models import MODELS

    assert tuple(MODELS) == MODEL_NAMES
    assert set(BASELINES) | set(GNN_MODELS) | set(TRAINED_MODELS) <= set(MODEL_NAMES)


def test_every_config_field_has_a_flag_with_the_dataclass_default():
    """One source of defaults: each TrainConfig/OptimConfig field is a 'kgrec train' flag (or listed as
    internal), and a parse of no flags gives exactly the dataclass defaults."""
    from dataclasses import fields

    from kgrec.config import INTERNAL_FIELDS, TRAIN_FLAGS, OptimConfig, TrainConfig, config_from_args

    names = {f.name for f in fields(TrainConfig) if f.name != "optim"} | {
        f"optim.{f.name}" for f in fields(OptimConfig)
    }
    flagged = {f.field for f in TRAIN_FLAGS}
    assert names == flagged | set(INTERNAL_FIELDS), sorted(names ^ (flagged | set(INTERNAL_FIELDS)))
    train = next(p for n, p in _subparsers(build_parser()).items() if n == "train")
    assert config_from_args(train.parse_args([])) == TrainConfig()
    cfg = config_from_args(
        train.parse_args(["--no-text", "--epochs", "7", "--temperature", "0.3", "--baselines", "ease"])
    )
    assert (cfg.text, cfg.optim.epochs, cfg.optim.temperature, cfg.baselines) == (False, 7, (0.3,), ("ease",))


def test_unknown_relation_is_a_clear_error():
    out = run_cli("train", "--relations", "in_category,bogus", "--quiet")
    assert out.returncode == 2
    assert "unknown relations ['bogus']" in out.stderr and "Traceback" not in out.stderr

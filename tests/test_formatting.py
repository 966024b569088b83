"""One way to write sizes, times, digests and nested keys, shared by the CLI, the UI, notebook views,
progress bars and compare (``modelreg.formatting``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from modelreg import formatting, html, progress
from modelreg.formatting import flatten, fmt_time, human_size, short_digest


def test_the_views_use_the_one_implementation() -> None:
    assert html.human_size is progress.human_size is formatting.human_size
    assert html.fmt_time is formatting.fmt_time and html.short_digest is formatting.short_digest


def test_sizes() -> None:
    assert [human_size(n) for n in (0, 1023, 1536, 6 * 1024**2, 3 * 1024**4, 5 * 1024**5)] == [
        "0 B", "1023 B", "1.5 KiB", "6.0 MiB", "3.0 TiB", "5.0 PiB",
    ]  # fmt: skip
    assert human_size(None) == ""


def test_times_are_utc_whatever_the_zone() -> None:
    t = datetime(2026, 11, 20, 15, 3, 7, tzinfo=timezone(timedelta(hours=1)))
    assert fmt_time(t) == "2026-11-20 14:03:07"
    assert fmt_time(None) == "" and fmt_time(None, missing="-") == "-"


def test_digests() -> None:
    d = "sha256:" + "0123456789abcdef" * 4
    assert short_digest(d) == "0123456789ab"
    assert short_digest(d, algorithm=True) == "sha256:0123456789ab"
    assert short_digest(None) == "" and short_digest("") == ""


def test_flatten_expands_mappings_and_lists_of_mappings_and_keeps_empty_values() -> None:
    value = {"opt": {"lr": 0.1, "betas": [0.9, 0.99]}, "datasets": [{"uri": "s3://d", "role": "train"}], "x": {}}
    assert flatten(value) == {
        "opt.lr": 0.1, "opt.betas": [0.9, 0.99], "datasets[0].uri": "s3://d", "datasets[0].role": "train", "x": {},
    }  # fmt: skip
    assert flatten({}) == {} and flatten({"a": []}) == {"a": []}

"""System check W004: the host's layout renders the blocks the Xero pages fill."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings as django_settings
from django.test import override_settings

from xero_integration.checks import check_host_layout


def templates_in(folder: Path) -> list[dict]:
    """The demo's template settings with ``folder`` searched first."""
    engine = {**django_settings.TEMPLATES[0], "DIRS": [folder]}
    return [engine]


def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_the_demo_layout_renders_every_block() -> None:
    assert check_host_layout() == []


def test_a_layout_without_extra_head_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "base.html", "<head></head><body>{% block content %}{% endblock %}</body>")
    with override_settings(TEMPLATES=templates_in(tmp_path)):
        (warning,) = check_host_layout()
    assert warning.id == "xero_integration.W004"
    assert "“extra_head”" in warning.msg and "never refresh" in warning.msg
    assert "{% block extra_head %}{% endblock %} to your base.html inside <head>" in warning.hint


def test_a_layout_without_content_is_reported(tmp_path: Path) -> None:
    write(
        tmp_path,
        "base.html",
        "<head>{% block extra_head %}{% endblock %}</head>{% block main %}{% endblock %}",
    )
    with override_settings(TEMPLATES=templates_in(tmp_path)):
        (warning,) = check_host_layout()
    assert "“content”" in warning.msg and "show nothing" in warning.msg


def test_a_missing_base_template_is_reported(tmp_path: Path) -> None:
    with override_settings(TEMPLATES=templates_in(tmp_path)):
        (warning,) = check_host_layout()
    assert "extends “base.html”, which does not exist" in warning.msg


def test_an_override_that_maps_the_blocks_onto_another_layout_passes(tmp_path: Path) -> None:
    write(
        tmp_path,
        "layout.html",
        "<head>{% block head %}{% endblock %}</head>{% block main %}{% endblock %}",
    )
    write(
        tmp_path,
        "xero_integration/base.html",
        '{% extends "layout.html" %}'
        "{% block head %}{% block extra_head %}{% endblock %}{% endblock %}"
        "{% block main %}{% block content %}{% endblock %}{% endblock %}",
    )
    with override_settings(TEMPLATES=templates_in(tmp_path)):
        assert check_host_layout() == []


def test_a_layout_extending_a_layout_of_the_same_name_is_followed(tmp_path: Path) -> None:
    """A project's base.html may extend another folder's base.html (the loader skips itself)."""
    write(tmp_path, "base.html", '{% extends "base.html" %}{% block title %}Mine{% endblock %}')
    demo_layouts = django_settings.TEMPLATES[0]["DIRS"]
    engine = {**django_settings.TEMPLATES[0], "DIRS": [tmp_path, *demo_layouts]}
    with override_settings(TEMPLATES=[engine]):
        assert check_host_layout() == []

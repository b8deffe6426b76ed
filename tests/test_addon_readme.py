"""Each addon's README.rst and Apps page are the ones its readme/ fragments make."""

import importlib.util
import pathlib

import docutils.core
import docutils.writers
import pytest

SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "scripts" / "gen_addon_readme.py"


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_addon_readme", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = load_generator()
ADDONS = generator.addon_folders()


def test_every_addon_of_the_repository_has_readme_fragments():
    manifests = sorted(
        path.parent.name
        for path in generator.REPO.glob("metrika_offline_conversions*/__manifest__.py")
    )
    assert manifests, "no addon found"
    assert [addon.name for addon in ADDONS] == manifests


@pytest.mark.parametrize("addon", ADDONS, ids=lambda addon: addon.name)
def test_generated_files_are_up_to_date(addon):
    stale = generator.out_of_date([addon])
    assert not stale, f"run python3 scripts/gen_addon_readme.py: {sorted(map(str, stale))}"


@pytest.mark.parametrize("addon", ADDONS, ids=lambda addon: addon.name)
def test_readme_is_valid_restructured_text(addon):
    # What Odoo and PyPI do with it: docutils, here stopping at the first warning.
    text = (addon / "README.rst").read_text(encoding="utf-8")
    # A writer object, not writer_name (deprecated by docutils 0.22 and later, where `writer`
    # takes a name instead; an object works in every version).
    html = docutils.core.publish_string(
        text,
        writer=docutils.writers.get_writer_class("html")(),
        settings_overrides={"halt_level": 2, "report_level": 2, "output_encoding": "unicode"},
    )
    assert "Known issues / Roadmap" in html
    for picture in generator.IMAGE_SOURCE.findall(html):
        assert (addon / picture).is_file(), picture


@pytest.mark.parametrize("addon", ADDONS, ids=lambda addon: addon.name)
def test_apps_page_shows_every_fragment_and_picture(addon):
    page = (addon / "static" / "description" / "index.html").read_text(encoding="utf-8")
    for name, title in (*generator.SECTIONS, *generator.CREDITS):
        if (addon / "readme" / f"{name}.md").is_file() and title:
            assert f">{title}</h2>" in page or f">{title}</h3>" in page
    for picture in generator.IMAGE_SOURCE.findall(page):
        assert (addon / "static" / "description" / picture).is_file(), picture


def test_a_changed_fragment_makes_the_files_stale(tmp_path):
    addon = tmp_path / "metrika_offline_conversions_demo"
    (addon / "readme").mkdir(parents=True)
    (addon / "__manifest__.py").write_text(
        "{'name': 'Demo', 'summary': 'A demo', 'version': '18.0.1.0.0', 'license': 'LGPL-3',"
        " 'author': 'Someone', 'depends': ['base']}",
        encoding="utf-8",
    )
    (addon / "readme" / "DESCRIPTION.md").write_text("Does a thing.\n", encoding="utf-8")
    (addon / "readme" / "USAGE.md").write_text("# Step\n\nPress *it*.\n", encoding="utf-8")
    stale = generator.out_of_date([addon])
    assert set(stale) == {addon / "README.rst", addon / "static" / "description" / "index.html"}
    for path, text in stale.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert generator.out_of_date([addon]) == {}
    page = (addon / "static" / "description" / "index.html").read_text(encoding="utf-8")
    # The fragment's heading goes under the Usage section.
    assert "<h2>Usage</h2>" in page and "<h3>Step</h3>" in page and "<em>it</em>" in page
    readme = (addon / "README.rst").read_text(encoding="utf-8")
    assert "Usage\n-----\n" in readme and "Step\n~~~~\n" in readme

    (addon / "readme" / "USAGE.md").write_text("> A quote\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="USAGE|readme"):
        generator.out_of_date([addon])

    (addon / "readme" / "USAGE.md").write_text("Press it twice.\n", encoding="utf-8")
    assert set(generator.out_of_date([addon])) == set(stale)

"""Build each addon's README.rst and Apps page (static/description/index.html) from readme/*.md.

OCA's layout: an addon's user documentation lives in Markdown fragments under ``readme/``
(DESCRIPTION, INSTALL, CONFIGURE, USAGE, ROADMAP, HISTORY, CONTRIBUTORS, CREDITS); both generated
files are made from them and are never edited by hand. Every ``metrika_offline_conversions*``
folder of the repository that has a manifest and a ``readme/`` folder is handled.

The Apps page is rendered by python-markdown. README.rst (what OCA's tools and Odoo expect
beside the manifest) comes from the same text through a small converter of the Markdown the
fragments use: headings, paragraphs, lists, emphasis, inline code, links and pictures on their
own line; anything else is refused with the fragment's name, rather than rendered wrong.

Usage: ``python3 scripts/gen_addon_readme.py [--check] [addon folder ...]``. Without ``--check``
it rewrites what is out of date (exit 1 when it changed anything, as pre-commit expects of a
fixer); with ``--check`` it only says what is out of date.
"""

import argparse
import ast
import hashlib
import html
import pathlib
import re
import sys

import markdown

REPO = pathlib.Path(__file__).resolve().parent.parent
ADDON_PREFIX = "metrika_offline_conversions"
# (fragment, section title), in OCA's order; a missing fragment leaves its section out.
SECTIONS = (
    ("DESCRIPTION", None),
    ("INSTALL", "Installation"),
    ("CONFIGURE", "Configuration"),
    ("USAGE", "Usage"),
    ("ROADMAP", "Known issues / Roadmap"),
    ("HISTORY", "Changelog"),
)
CREDITS = (("CONTRIBUTORS", "Contributors"), ("CREDITS", "Other credits"))
# Fragments show their pictures relative to readme/, so that they display where they are.
IMAGE_IN_FRAGMENT = re.compile(r"\]\(\.\./static/description/")
HEADING = re.compile(r"^(#+)(?= )", re.MULTILINE)
RST_UNDERLINES = '=-~^"'
PICTURE_LINE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)$")
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`]+)`")
UNSUPPORTED = re.compile(r"^(```|>|\||\d+\. |\s*[*+] )")
IMAGE_SOURCE = re.compile(r'<img [^>]*src="([^"]+)"')
STYLE = """
body { font-family: system-ui, sans-serif; line-height: 1.5; max-width: 60em; margin: 0 auto;
       padding: 1em; color: #212529; }
h1 { font-size: 1.8em; } h2 { font-size: 1.4em; border-bottom: 1px solid #dee2e6; }
h3 { font-size: 1.15em; }
img { max-width: 100%; border: 1px solid #dee2e6; border-radius: 4px; margin: 0.5em 0; }
code { background: #f1f3f5; padding: 0 0.2em; border-radius: 3px; }
.summary { font-size: 1.15em; color: #495057; }
.generated { color: #868e96; font-size: 0.85em; }
"""


def addon_folders():
    return sorted(
        path.parent
        for path in REPO.glob(f"{ADDON_PREFIX}*/__manifest__.py")
        if (path.parent / "readme").is_dir()
    )


def read_manifest(addon):
    return ast.literal_eval((addon / "__manifest__.py").read_text(encoding="utf-8"))


def read_fragments(addon):
    fragments = {}
    for name, _title in (*SECTIONS, *CREDITS):
        path = addon / "readme" / f"{name}.md"
        if path.is_file():
            text = path.read_text(encoding="utf-8").strip()
            if text:
                fragments[name] = text
    return fragments


def nest(text, parent_level):
    """A fragment's headings go under its section: the highest one a level below ``parent_level``.

    reStructuredText refuses a skipped level, so the fragment's own levels are kept relative.
    """
    levels = [len(found.group(1)) for found in HEADING.finditer(text)]
    if not levels:
        return text
    shift = parent_level + 1 - min(levels)
    return HEADING.sub(lambda found: "#" * (len(found.group(1)) + shift), text)


def source_digest(fragments):
    digest = hashlib.sha256()
    for name in sorted(fragments):
        digest.update(f"{name}\0{fragments[name]}\0".encode())
    return digest.hexdigest()[:16]


def build_markdown(manifest, fragments, image_prefix):
    """The addon's documentation as one Markdown text; pictures under ``image_prefix``."""
    parts = [f"# {manifest['name']}", f"*{manifest['summary']}*"]
    facts = [
        f"Version {manifest['version']}",
        f"License {manifest['license']}",
        f"Depends on: {', '.join(manifest.get('depends', []))}",
    ]
    parts.append(" · ".join(facts))
    for name, title in SECTIONS:
        if name not in fragments:
            continue
        if title:
            parts.append(f"## {title}")
            parts.append(nest(fragments[name], 2))
        else:
            parts.append(nest(fragments[name], 1))
    credits = [(title, fragments[name]) for name, title in CREDITS if name in fragments]
    parts.append("## Credits")
    parts.append(f"### Authors\n\n- {manifest['author']}")
    for title, text in credits:
        parts.append(f"### {title}")
        parts.append(nest(text, 3))
    text = "\n\n".join(parts) + "\n"
    return IMAGE_IN_FRAGMENT.sub(f"]({image_prefix}", text)


def rst_inline(text):
    text = CODE.sub(lambda found: f"``{found.group(1)}``", text)
    return LINK.sub(lambda found: f"`{found.group(1)} <{found.group(2)}>`__", text)


def markdown_to_rst(text):
    """reStructuredText for the Markdown subset of the fragments (see the module docstring)."""
    lines = []
    for line in text.split("\n"):
        if UNSUPPORTED.match(line):
            raise ValueError(f"Markdown this script does not convert: {line!r}")
        heading = HEADING.match(line)
        picture = PICTURE_LINE.match(line)
        if heading:
            title = rst_inline(line[len(heading.group(1)) :].strip())
            lines += [title, RST_UNDERLINES[len(heading.group(1)) - 1] * len(title)]
        elif picture:
            lines += [f".. image:: {picture.group(2)}", f"   :alt: {picture.group(1)}"]
        else:
            lines.append(rst_inline(line))
    return "\n".join(lines)


def build_readme(addon, manifest, fragments):
    try:
        body = markdown_to_rst(build_markdown(manifest, fragments, "static/description/"))
    except ValueError as error:
        raise SystemExit(f"{addon.name}/readme: {error}") from None
    banner = (
        f".. Generated by scripts/gen_addon_readme.py from {addon.name}/readme/*.md\n"
        f"   (source digest {source_digest(fragments)}): edit the fragments, not this file.\n"
    )
    return banner + "\n" + body


def build_index_html(addon, manifest, fragments):
    # index.html sits in static/description/, beside the pictures; Odoo's Apps page also
    # expects image paths relative to that folder.
    body = markdown.markdown(
        build_markdown(manifest, fragments, ""),
        extensions=["tables", "sane_lists"],
        output_format="html",
    )
    title = html.escape(manifest["name"])
    return (
        "<!DOCTYPE html>\n"
        f"<!-- Generated by scripts/gen_addon_readme.py from {addon.name}/readme/*.md "
        f"(source digest {source_digest(fragments)}): edit the fragments, not this file. -->\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8"/>\n'
        f"<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


def generated_files(addon):
    """{path: expected text} of the files made from ``addon``'s fragments."""
    manifest = read_manifest(addon)
    fragments = read_fragments(addon)
    if "DESCRIPTION" not in fragments:
        raise SystemExit(f"{addon.name}: readme/DESCRIPTION.md is missing or empty")
    return {
        addon / "README.rst": build_readme(addon, manifest, fragments),
        addon / "static" / "description" / "index.html": build_index_html(
            addon, manifest, fragments
        ),
    }


def out_of_date(addons):
    """{path: expected text} of the generated files that differ from what is on disk."""
    stale = {}
    for addon in addons:
        for path, text in generated_files(addon).items():
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale[path] = text
    return stale


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="change nothing, report only")
    parser.add_argument("addons", nargs="*", type=pathlib.Path, help="addon folders (all)")
    args = parser.parse_args(argv)
    addons = [path.resolve() for path in args.addons] or addon_folders()
    stale = out_of_date(addons)
    for path, text in stale.items():
        shown = path.relative_to(REPO)
        if args.check:
            print(f"{shown} is out of date: run python3 scripts/gen_addon_readme.py")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"{shown} written")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

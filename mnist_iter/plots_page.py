"""Write the HTML template that `dvc plots show/diff` fill (`.dvc/config`: plots.html_template):
vega, vega-lite and vega-embed inlined from the vl-convert-python package, so every Vega plot
renders with no network.

    python -m mnist_iter.plots_page [.dvc/offline.html]
"""
from __future__ import annotations

import sys
from pathlib import Path

from mnist_iter.cli import command
from mnist_iter.files import outputs

TEMPLATE = Path(".dvc/offline.html")
PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>DVC plots</title>
<!-- vega {vega}, vega-lite {vegalite}, vega-embed {embed}: from vl-convert-python, offline -->
<script>
{bundle}
</script>
<style>body {{ font-family: sans-serif; }} table {{ border-spacing: 15px; }}</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def page() -> str:
    import vl_convert

    bundle = vl_convert.javascript_bundle().replace("</script", "<\\/script")
    return PAGE.format(bundle=bundle, vega=vl_convert.get_vega_version(),
                       vegalite=vl_convert.get_vegalite_versions()[-1],
                       embed=vl_convert.get_vega_embed_version())


@command
def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else TEMPLATE
    with outputs() as out:
        out.text(path, page())
    print(f"{path}: offline plots template")


if __name__ == "__main__":
    main()

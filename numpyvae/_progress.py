"""Progress bars, made on first use.

``tqdm.auto`` draws a widget in a notebook and a text bar elsewhere, but importing it pulls in
asyncio and costs about 9 MB of resident memory (measured: 8.7 MB on top of numpy). A run that
shows no bar (``progress=False``, the benchmarks) should not pay that, so the import waits for
the first bar. This is the package's one deferred import; everything else imports at the top.
"""
from __future__ import annotations

from typing import Any


def progress_bar(**kwargs: Any) -> Any:
    """``tqdm.auto.tqdm(**kwargs)``."""
    from tqdm.auto import tqdm
    return tqdm(**kwargs)

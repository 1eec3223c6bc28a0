"""An API process applies SEARCH_SCAN_THREADS to its BLAS threads when it starts (ADR 0079)."""

from __future__ import annotations

import os

from threadpoolctl import threadpool_limits

from app.main import create_app
from base.settings import Settings
from tests.support.app_fixtures import changed
from tests.support.blas import blas_threads


async def test_an_api_process_applies_search_scan_threads_when_it_starts(
    settings: Settings,
) -> None:
    assert settings.search_scan_threads == 1  # the default
    more = min(2, os.cpu_count() or 1)  # BLAS never runs more threads than cores
    for threads, before in ((1, more), (more, 1)):
        threadpool_limits(limits=before, user_api="blas")
        application = create_app(changed(settings, search_scan_threads=threads))
        async with application.router.lifespan_context(application):
            assert blas_threads() == {threads}
    threadpool_limits(limits=1, user_api="blas")

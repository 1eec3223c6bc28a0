"""Reading a GraphQL multipart request (file uploads) within the upload limits.

Starlette parses the body as it streams in, spooling each file to a temporary file (in memory
up to 1 MiB, then on disk). Its parser only counts files; this one also stops storing a file
one byte past UPLOAD_MAX_FILE_BYTES, so an oversized file costs at most that much disk and the
upload service still sees that it was too large (FILE_TOO_LARGE). It accepts one file more than
UPLOAD_MAX_FILES, so that one too many is answered by the mutation as data (TOO_MANY_FILES);
more than that is refused before execution with the same code. The whole body is capped by
`app.http.BodySizeLimit` (Settings.upload_max_body_bytes).

The spooled files are closed (and deleted) when the request has been answered
(`close_uploads`).
"""

from __future__ import annotations

from contextvars import ContextVar

from cross_web import HTTPException
from cross_web.request._base import FormData
from cross_web.request._starlette import StarletteRequestAdapter
from starlette.datastructures import FormData as StarletteFormData
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from base.settings import Settings

# The form of the request being answered, closed once it has been answered.
_open_form: ContextVar[StarletteFormData | None] = ContextVar("open_form", default=None)

# Non-file fields of a GraphQL multipart request: `operations` and `map`. A field sent where
# a file belongs (a part without a file name) is counted as a file: the mutation reports it.
REQUEST_FIELDS = 2


class UploadRefused(HTTPException):
    """A multipart body refused before execution (HTTP 400), with its stable code."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(400, reason)
        self.code = code


class CappedMultiPartParser(MultiPartParser):
    def __init__(self, *args: object, max_file_bytes: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.max_file_bytes = max_file_bytes
        self._file_bytes = 0

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._file_bytes = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current_part.file is None:  # a field: Starlette caps it (max_part_size)
            super().on_part_data(data, start, end)
            return
        room = self.max_file_bytes + 1 - self._file_bytes
        if room <= 0:
            return  # already one byte past the limit: the rest is dropped
        end = min(end, start + room)
        self._file_bytes += end - start
        super().on_part_data(data, start, end)


async def parse_upload_form(request: Request, settings: Settings) -> StarletteFormData:
    parser = CappedMultiPartParser(
        request.headers,
        request.stream(),
        max_files=settings.upload_max_files + 1,
        max_fields=REQUEST_FIELDS + settings.upload_max_files + 1,
        max_part_size=settings.graphql_max_body_bytes,
        max_file_bytes=settings.upload_max_file_bytes,
    )
    try:
        return await parser.parse()
    except MultiPartException as error:
        if str(error).startswith("Too many files"):
            raise UploadRefused(
                f"Upload at most {settings.upload_max_files} files at a time.", "TOO_MANY_FILES"
            ) from error
        raise UploadRefused(f"The multipart body is not valid: {error}", "BAD_REQUEST") from error


class UploadRequestAdapter(StarletteRequestAdapter):
    """Strawberry's request adapter with the form read by `parse_upload_form`."""

    def __init__(self, request: Request) -> None:
        super().__init__(request)
        self.starlette_request = request

    async def get_form_data(self) -> FormData:
        request = self.starlette_request
        form = await parse_upload_form(request, request.app.state.settings)
        _open_form.set(form)
        return FormData(files=form, form=form)


async def close_uploads() -> None:
    form = _open_form.get()
    if form is not None:
        _open_form.set(None)
        await form.close()

"""Upload handling: files stream to a temporary file on disk and are refused past MAX_UPLOAD_BYTES."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler


class UploadTooLarge(Exception):
    pass


class SizeLimitedUploadHandler(TemporaryFileUploadHandler):
    """Always streams to disk (never holds a file in memory) and stops at the configured cap."""

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > settings.MAX_UPLOAD_BYTES:
            self.file.close()
            self.request.upload_too_large = True  # read by the upload endpoint to say why
            raise StopUpload(connection_reset=False)
        return super().receive_data_chunk(raw_data, start)

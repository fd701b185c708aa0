"""Check every record of a data file with the same checks training and evaluation apply.

Reports each bad record (file:line, id, reason, detail), a summary by reason, and with a rejects path writes each
rejected record there with its reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cambrian.data.datasets import ExampleBuilder, RejectsLog, open_records
from cambrian.data.records import RecordError
from cambrian.data.sources import JsonlRecords, iter_webdataset_records


@dataclass
class ValidationReport:
    total: int = 0
    errors: list[RecordError] = field(default_factory=list)

    @property
    def by_reason(self) -> Counter:
        return Counter(error.reason for error in self.errors)

    @property
    def ok(self) -> bool:
        return not self.errors


def iter_checked(path: str | Path, builder: ExampleBuilder):
    """(record error or None, raw bytes or None) per record, in file order."""
    path = Path(path)
    if path.suffix == ".tar" or path.name.endswith((".tar.gz", ".tgz")):
        for item in iter_webdataset_records([path]):
            yield (item, None) if isinstance(item, RecordError) else (_check(builder, lambda r=item: r), None)
        return
    records = open_records(path)
    for i in range(len(records)):
        raw = records.raw(i) if isinstance(records, JsonlRecords) else None
        yield _check(builder, lambda i=i: records.record(i)), raw


def _check(builder: ExampleBuilder, get_record) -> RecordError | None:
    try:
        record = get_record()
        builder.load_images(record)  # every image, also those truncation would drop: they are data errors
        builder.tokenize(record)
    except RecordError as error:
        return error
    return None


def validate_file(
    path: str | Path, builder: ExampleBuilder, rejects_path: str | Path | None = None, echo=print
) -> ValidationReport:
    report, rejects = ValidationReport(), RejectsLog(rejects_path)
    if rejects_path is not None:
        Path(rejects_path).write_bytes(b"")
    for error, raw in iter_checked(path, builder):
        report.total += 1
        if error is not None:
            report.errors.append(error)
            rejects.write(error, raw)
            echo(f"{error.location}: {error.reason}: {error.detail}")
    return report

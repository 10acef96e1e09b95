"""Every fixture names its source and licence, and is byte for byte the file it came from."""

from __future__ import annotations

from tests.conformance.replay import RECORDINGS, SOURCES, blob_id


def test_every_fixture_is_listed_with_its_source_and_licence() -> None:
    files = {str(p.relative_to(RECORDINGS)) for p in RECORDINGS.rglob("*") if p.is_file()} - {
        "SOURCES.json"
    }
    assert files == set(SOURCES)
    for name, source in SOURCES.items():
        assert source["repository"].startswith("https://github.com/huggingface/"), name
        assert len(source["commit"]) == 40, name
        assert source["path"], name
        assert source["licence"] == "Apache-2.0", name


def test_every_fixture_is_the_committed_file_byte_for_byte() -> None:
    # git's blob id of the file at that commit (``git rev-parse COMMIT:PATH``) is a hash of its
    # bytes: a fixture edited after copying, or re-encoded, no longer matches.
    for name, source in SOURCES.items():
        assert blob_id((RECORDINGS / name).read_bytes()) == source["blob"], name

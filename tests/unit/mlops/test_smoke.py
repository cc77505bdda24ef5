"""mlops.smoke: rows for the smoke test come from the head of the training file, never a cut row."""

from __future__ import annotations

from mlops.smoke import sample_rows

CSV = b"f0,segment,label\n1.5,a,0\n2,b,1\n-3e2,c,0\n"


def test_rows_come_parsed_without_the_label() -> None:
    assert sample_rows(CSV, "label", 2, head_bytes=1024) == [{"f0": 1.5, "segment": "a"}, {"f0": 2, "segment": "b"}]


def test_a_last_row_cut_by_the_head_is_left_out() -> None:
    head = CSV[:-4]  # "-3e2,c,0\n" cut to "-3e2,"
    assert sample_rows(head, "label", 5, head_bytes=len(head)) == [{"f0": 1.5, "segment": "a"},
                                                                    {"f0": 2, "segment": "b"}]


def test_a_head_cut_inside_a_multibyte_character_is_not_an_error() -> None:
    content = "f0,segment,label\n1,é,0\n2,ü,1\n".encode()
    head = content[:-4]  # the cut falls inside "ü"
    assert sample_rows(head, "label", 5, head_bytes=len(head)) == [{"f0": 1, "segment": "é"}]


def test_a_whole_file_keeps_its_last_row_without_a_newline() -> None:
    content = CSV.rstrip(b"\n")
    assert len(sample_rows(content, "label", 5, head_bytes=len(content) + 1)) == 3


def test_null_values_are_sent_as_null_for_the_model_to_impute() -> None:
    content = b"f0,segment,label\n,a,0\n2,,1\nNaN,b,0\n"
    assert sample_rows(content, "label", 3, head_bytes=1024) == [
        {"f0": None, "segment": "a"}, {"f0": 2, "segment": None}, {"f0": None, "segment": "b"}]

from autocomp_env.schedules.base import read_schedule, schedule_comment
from simulators.result import SimError, SimResult


def test_schedule_comment_round_trips_in_c_and_python():
    s = {"tile_i": 4, "order": "ijk", "double_buffer": True}
    for lang in ("c", "python"):
        code = f"int x;\n{schedule_comment(s, lang)}\nvoid f();\n"
        assert read_schedule(code) == s


def test_read_schedule_ignores_code_without_marker_or_with_bad_json():
    assert read_schedule("void solution() {}") is None
    assert read_schedule("// autocomp-schedule: {not json}") is None


def test_simresult_json_round_trip_keeps_error_and_aliases():
    r = SimResult(False, None, "cycles", error=SimError("address_error", "row 99999", line=3, instruction=7))
    d = r.to_dict()
    assert d["cycles"] is None and d["error"]["type"] == "address_error"
    assert SimResult.from_dict(d) == r

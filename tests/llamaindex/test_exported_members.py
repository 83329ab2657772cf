"""Lock smart_llamaindex's public surface."""

import smart_llamaindex


def test_public_names():
    assert sorted(smart_llamaindex.__all__) == [
        "SMART_KEY",
        "SmartLLM",
        "answer_from_response",
        "usage_from_response",
    ]
    for name in smart_llamaindex.__all__:
        assert getattr(smart_llamaindex, name) is not None
    assert smart_llamaindex.SMART_KEY == "smart"

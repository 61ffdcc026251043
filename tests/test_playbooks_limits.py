"""Operator templates cannot hurt the process: output, value sizes and work are bounded,
refused at validation with a clear issue, and at send time logged without a crash."""

from __future__ import annotations

import logging
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError
from sqlalchemy import select

from bot.config.playbooks import PlaybookLoadError, load_playbooks, render_text
from bot.config.playbooks.limits import MAX_OUTPUT_CHARS, TemplateLimitError
from bot.config.playbooks.render import WELCOME_SAMPLE, WELCOME_VARS, eval_condition, lint_template
from bot.sandbox.emulator.server import RunningEmulator
from storage.models import WelcomeBatch
from tests.helpers import (
    AUTH,
    MORNING,
    Clock,
    LiveApp,
    join_callback,
    live_webhook_group,
    sent_texts,
    settle,
)

DOUBLING_NAMESPACE = (
    '{% set ns = namespace(s="xx") %}'
    "{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"
)
DOUBLING_BLOCK = (
    '{% set ns = namespace(s="xx") %}'
    "{% for i in range(40) %}{% set doubled %}{{ ns.s }}{{ ns.s }}{% endset %}"
    "{% set ns.s = doubled %}{% endfor %}{{ ns.s|length }}"
)
EXPONENTIAL_MACRO = (
    "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(40) }}"
)


@pytest.mark.parametrize(
    "template",
    [
        '{{ "x" * 10**9 }}',
        '{{ 10**9 * "x" }}',
        "{{ [1] * 10**9 }}",
        "{{ 10 ** 10 ** 10 }}",
        "{{ (2**200) * (2**200) }}",
        '{{ "x"|center(10**9) }}',
        '{{ "x".ljust(10**9) }}',
        '{{ "x".zfill(10**9) }}',
        '{{ ("a" * 5000)|replace("a", "a" * 5000) }}',
        '{{ ("a" * 5000).replace("a", "a" * 5000) }}',
        '{{ "%999999999s"|format("x") }}',
        '{{ "%999999999s" % "x" }}',
        '{{ "{:>999999999}".format("x") }}',
        '{{ "x"|indent(10**9, true) }}',
        '{{ [1]|batch(10**9, "x")|list }}',
        '{{ ("x" * 9000) + ("x" * 9000) }}',
        '{{ ("x" * 9000) ~ ("x" * 9000) }}',
        "{{ range(10**6)|list }}",
        '{{ (["x" * 9000] * 9)|join }}',
        DOUBLING_NAMESPACE,
        DOUBLING_BLOCK,
        EXPONENTIAL_MACRO,
        "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
    ],
)
def test_amplifying_templates_are_refused(template: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(TemplateLimitError):
            render_text(template, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # refused before the big value was built


def test_the_limit_error_is_a_security_error_with_a_clear_message() -> None:
    with pytest.raises(SecurityError, match="longer than"):
        render_text('{{ "x" * 10**9 }}', {})


def test_output_is_bounded_per_message() -> None:
    exact = "{% for i in range(1000) %}abcd{% endfor %}"
    assert len(render_text(exact, {})) == MAX_OUTPUT_CHARS
    with pytest.raises(TemplateLimitError, match=f"longer than {MAX_OUTPUT_CHARS} characters"):
        render_text(exact + "e", {})
    # Streamed: a template printing far more stops at the limit, without building it.
    with pytest.raises(TemplateLimitError):
        render_text('{% for i in range(1000) %}{{ "y" * 9000 }}{% endfor %}', {})


def test_data_is_immutable_and_lipsum_is_gone() -> None:
    with pytest.raises(SecurityError):
        render_text("{% set l = [] %}{{ l.append(1) }}", {})
    with pytest.raises(Exception, match="lipsum"):
        render_text("{{ lipsum(n=1000) }}", {})


def test_conditions_are_bounded_too() -> None:
    with pytest.raises(TemplateLimitError):
        eval_condition('("x" * 10**9)|length > 0', {})
    assert eval_condition("member.count * 2 > 3", {"member": {"count": 2}})


def test_ordinary_templates_still_render() -> None:
    template = (
        "欢迎 {{ names }}！{% for m in members %}{{ loop.index }}. {{ m.name|upper }} {% endfor %}"
        '{{ "—" * 3 }}{{ [1, 2, 3]|join("、") }}{{ "%05.1f"|format(3.14159) }}'
        "{{ 2 ** 10 }}{{ '{}-{}'.format('a', 'b') }}{{ 'ab'|center(6) }}|"
        "{% set ns = namespace(n=0) %}{% for i in range(10) %}{% set ns.n = ns.n + i %}"
        "{% endfor %}{{ ns.n }}{% set block %}块{% endset %}{{ block ~ '!' }}"
    )
    variables = {"names": "张三、李四", "members": [{"name": "zs"}, {"name": "ls"}]}
    assert render_text(template, variables) == (
        "欢迎 张三、李四！1. ZS 2. LS ———1、2、3003.11024a-b  ab  |45块!"
    )


def test_a_template_over_the_limits_is_a_validation_issue() -> None:
    problems = lint_template('{{ names }}{{ "x" * 10**9 }}', WELCOME_VARS, WELCOME_SAMPLE)
    assert len(problems) == 1
    assert "fails on sample data" in problems[0].message
    assert "longer than" in problems[0].message


def test_loading_a_playbook_with_a_huge_template_is_refused_naming_the_field(
    templates_dir: Path,
) -> None:
    (templates_dir / "huge.yaml").write_text(
        "description: 大\nextends: default\napplies_to:\n  tags: [大]\n"
        'welcome:\n  text: "{{ names * 10**9 }}"\n',
        encoding="utf-8",
    )
    with pytest.raises(PlaybookLoadError) as info:
        load_playbooks(templates_dir)
    issues = [str(issue) for issue in info.value.issues]
    assert any("huge.yaml" in line and "welcome.text" in line for line in issues), issues
    assert any("longer than" in line for line in issues), issues


# At send time: a template that passes the sample data but is too long for the real
# batch. The batch fails with the reason, the error is logged, nothing crashes, and
# the next batch with a shorter list of names goes out.
LONG_ON_REAL_DATA = "{% for m in members %}{{ m.name * 500 }}{% endfor %}"
GROUP = "wrLimitGroup"
NAMES = {f"wmL{i}": name for i, name in enumerate(["小林", "阿珍", "大卫", "思思", "老周"])}


@pytest.fixture
async def live(
    database_url: str, templates_dir: Path, emulator: RunningEmulator
) -> AsyncIterator[tuple[LiveApp, Clock]]:
    default = templates_dir / "default.yaml"
    text = default.read_text(encoding="utf-8")
    old = "  text: |\n    欢迎 {{ names }} 加入「{{ group.name }}」👋\n"
    assert old in text
    default.write_text(text.replace(old, f"  text: |\n    {LONG_ON_REAL_DATA}\n"), encoding="utf-8")
    clock = Clock(MORNING)
    async with live_webhook_group(
        database_url=database_url,
        templates_dir=templates_dir,
        emulator=emulator,
        clock=clock,
        chat_id=GROUP,
        name="限额群",
        members=NAMES,
    ) as app:
        yield app, clock


async def test_a_text_too_long_at_send_time_is_logged_and_the_service_goes_on(
    live: tuple[LiveApp, Clock],
    emulator: RunningEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, clock = live
    params, body = join_callback(GROUP, list(NAMES), create_time=int(clock.now.timestamp()))
    assert (await app.post_callback(params, body)).text == "success"
    await settle(app)
    clock.advance(3)
    with caplog.at_level(logging.ERROR):
        await settle(app)
    assert sent_texts(emulator) == []
    async with app.runtime.sessions() as session:
        batch = (await session.execute(select(WelcomeBatch))).scalar_one()
    assert batch.status == "failed"
    assert batch.note is not None and "longer than 4000 characters" in batch.note
    assert any(
        "welcome_batch" in record.getMessage()
        and record.exc_info is not None
        and "longer than 4000" in str(record.exc_info[1])
        for record in caplog.records
    )
    # The service goes on: the next, smaller batch is welcomed.
    clock.advance(120)
    params, body = join_callback(GROUP, ["wmLnew"], create_time=int(clock.now.timestamp()))
    assert (await app.post_callback(params, body)).text == "success"
    await settle(app)
    clock.advance(3)
    await settle(app)
    # One member with the neutral name: 1500 characters, sent in parts by the channel.
    assert "".join(sent_texts(emulator)).count("新朋友") == 500


async def test_the_preview_of_a_text_too_long_for_these_names_is_a_clear_422(
    live: tuple[LiveApp, Clock],
) -> None:
    app, _ = live
    response = await app.http.post(
        f"/admin/groups/{GROUP}/welcome/preview",
        headers=AUTH,
        json={"names": ["欧阳娜娜", "司马相如", "诸葛孔明"]},
    )
    assert response.status_code == 422
    assert "welcome.text" in response.json()["detail"]
    assert "longer than 4000 characters" in response.json()["detail"]

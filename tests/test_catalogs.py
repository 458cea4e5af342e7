"""Every catalog has every message the code uses, with the same placeholders and tags."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from string import Formatter

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.chat.i18n import DOMAIN, LOCALES, i18n, in_locale
from bot.chat.texts.errors import AS_SENT, BY_PROBLEM, MESSAGES
from bot.domain.errors import ErrorCode
from bot.domain.signal_syntax import SyntaxProblem

ROOT = Path(__file__).resolve().parents[1]
# The same keywords as `make catalogs`: Text(msgid), Plural(singular, plural).
KEYWORDS = {"Text": None, "Plural": (1, 2)}
TAG = re.compile(r"</?[a-z][^<>]*>")
LANGUAGES = sorted(p.name for p in LOCALES.iterdir() if (p / "LC_MESSAGES").is_dir())


def used_ids() -> set[str | tuple[str, str]]:
    ids: set[str | tuple[str, str]] = set()
    for folder in ("bot", "handlers"):
        method_map = [("**.py", "python")]
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder, method_map=method_map, keywords=KEYWORDS, comment_tags=()
        ):
            ids.add(message if isinstance(message, str) else (message[0], message[1]))
    return ids


def catalog(language: str) -> Catalog:
    with (LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        return read_po(po)


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(text) if name is not None}


def tags(text: str) -> Counter[str]:
    return Counter(TAG.findall(text))


def test_english_and_russian_are_there() -> None:
    assert {"en", "ru"} <= set(LANGUAGES)
    assert {"en", "ru"} <= set(i18n.available_locales)


def test_the_code_uses_enough_messages_to_be_checked() -> None:
    ids = used_ids()
    assert "There is nothing to cancel." in ids
    assert any(isinstance(message, tuple) for message in ids)  # plurals are extracted too
    assert len(ids) > 250


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_has_every_message_and_nothing_stale(language: str) -> None:
    entries = {_key(message.id): message for message in catalog(language) if message.id}
    keys = {_key(message) for message in used_ids()}
    missing = sorted(keys - entries.keys())
    stale = sorted(set(entries) - keys, key=str)
    assert not missing, f"{language} lacks {len(missing)} messages, e.g. {missing[:3]}"
    assert not stale, f"{language} has messages the code no longer uses: {stale[:3]}"
    untranslated = [k for k in keys if not all(_forms(entries[k]))]
    fuzzy = [k for k in keys if entries[k].fuzzy]
    assert not untranslated and not fuzzy, (untranslated[:3], fuzzy[:3])


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_placeholders_and_tags(language: str) -> None:
    problems = []
    for message in catalog(language):
        if not message.id:
            continue
        originals = [message.id] if isinstance(message.id, str) else list(message.id)
        for form in _forms(message):
            for original in originals:
                if placeholders(form) != placeholders(original):
                    problems.append(("placeholders", original[:50], form[:50]))
                if tags(form) != tags(original):
                    problems.append(("tags", original[:50], form[:50]))
                break
    assert not problems, problems[:5]


def test_every_error_code_has_words() -> None:
    assert set(MESSAGES) | set(AS_SENT) | set(BY_PROBLEM) == set(ErrorCode)
    assert not set(MESSAGES) & set(AS_SENT)
    assert not (set(MESSAGES) | set(AS_SENT)) & set(BY_PROBLEM)
    assert set(BY_PROBLEM[ErrorCode.SIGNAL_SYNTAX]) == set(SyntaxProblem)


def test_russian_reads_russian_and_other_languages_read_english() -> None:
    from bot.chat import texts

    with in_locale("ru"):
        assert str(texts.NOTHING_TO_CANCEL) == "Отменять нечего."
        assert texts.next_tier_line(1, "Gold", "15%", "1.00 USD").startswith("Ещё 1 активный")
        assert texts.next_tier_line(3, "Gold", "15%", "1.00 USD").startswith("Ещё 3 активных")
    with in_locale("ru-RU"):
        assert str(texts.CANCELLED) == "Отменено. Ничего не изменилось."
    for code in ("de", "", None, "en-GB"):
        with in_locale(code):
            assert str(texts.NOTHING_TO_CANCEL) == "There is nothing to cancel."


def _forms(message: object) -> list[str]:
    string = getattr(message, "string", "")
    return [string] if isinstance(string, str) else list(string)


def _key(message_id: str | tuple[str, ...] | list[str]) -> str:
    """A message by its (singular) id."""
    return message_id if isinstance(message_id, str) else message_id[0]

"""Translations: gettext catalogs under ``locales/`` through aiogram's I18n.

Templates are declared once as ``Text`` (or ``Plural``) and translated when used, into the
locale of the update being handled (aiogram's SimpleI18nMiddleware picks it from the
user's ``language_code``; English when the catalogs lack that language), or into a given
locale with ``in_locale`` (messages rendered when the outbox sends them). The English
template is the message id, so English needs no catalog to read right.

The ``.po`` catalogs are compiled in memory when the process starts (a few milliseconds
with Babel), so a clean clone, an edited catalog and every entry point read the same
words, with no ``.mo`` files to build or keep in step. ``make catalogs`` extracts new
message ids into them; tests/test_catalogs.py checks that every language has every
message, with the same placeholders and HTML tags.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from gettext import GNUTranslations
from io import BytesIO
from pathlib import Path

from aiogram.utils.i18n import I18n
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = Path(__file__).resolve().parents[2] / "locales"
DOMAIN = "messages"
DEFAULT_LOCALE = "en"


class CatalogI18n(I18n):
    """aiogram's I18n, reading ``<locale>/LC_MESSAGES/<domain>.po`` rather than ``.mo``."""

    def find_locales(self) -> dict[str, GNUTranslations]:
        translations: dict[str, GNUTranslations] = {}
        for po_path in sorted(self.path.glob(f"*/LC_MESSAGES/{self.domain}.po")):
            with po_path.open("rb") as po:
                catalog = read_po(po)
            compiled = BytesIO()
            write_mo(compiled, catalog)
            compiled.seek(0)
            translations[po_path.parent.parent.name] = GNUTranslations(compiled)
        return translations


def create_i18n() -> I18n:
    return CatalogI18n(path=LOCALES, default_locale=DEFAULT_LOCALE, domain=DOMAIN)


# One set of catalogs per process: they are read-only once loaded.
i18n = create_i18n()


@contextmanager
def in_locale(language_code: str | None) -> Iterator[None]:
    """Render in the user's language (its first part: "pt-BR" is "pt"), else English."""
    code = (language_code or "").split("-", 1)[0].lower()
    with i18n.use_locale(code if code in i18n.available_locales else DEFAULT_LOCALE):
        yield


@dataclass(frozen=True, slots=True)
class Text:
    """A template in English (its message id), translated each time it is used."""

    msgid: str

    def __str__(self) -> str:
        return i18n.gettext(self.msgid)

    def format(self, **params: object) -> str:
        return str(self).format(**params)


@dataclass(frozen=True, slots=True)
class Plural:
    """A template with a count: the catalog's plural forms pick the words for ``n``."""

    singular: str
    plural: str

    def format(self, n: int, **params: object) -> str:
        return i18n.gettext(self.singular, self.plural, n).format(n=n, **params)

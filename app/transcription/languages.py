"""Whisper's language codes and their English names, and the lookup both ways."""

from __future__ import annotations

__all__ = ["LANGUAGES", "UnknownLanguageError", "language_name", "normalise_language"]

LANGUAGES: dict[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian",
    "ko": "korean", "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish",
    "pl": "polish", "ca": "catalan", "nl": "dutch", "ar": "arabic", "sv": "swedish",
    "it": "italian", "id": "indonesian", "hi": "hindi", "fi": "finnish", "vi": "vietnamese",
    "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay", "cs": "czech",
    "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian",
    "la": "latin", "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak",
    "te": "telugu", "fa": "persian", "lv": "latvian", "bn": "bengali", "sr": "serbian",
    "az": "azerbaijani", "sl": "slovenian", "kn": "kannada", "et": "estonian",
    "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian",
    "sw": "swahili", "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala",
    "km": "khmer", "sn": "shona", "yo": "yoruba", "so": "somali", "af": "afrikaans",
    "oc": "occitan", "ka": "georgian", "be": "belarusian", "tg": "tajik", "sd": "sindhi",
    "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao", "uz": "uzbek",
    "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan",
    "tl": "tagalog", "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian",
    "ln": "lingala", "ha": "hausa", "ba": "bashkir", "jw": "javanese", "su": "sundanese",
    "yue": "cantonese",
}  # fmt: skip

_BY_NAME = {name: code for code, name in LANGUAGES.items()}
_ALIASES = {"mandarin": "zh", "castilian": "es", "flemish": "nl", "haitian": "ht",
            "burmese": "my", "valencian": "ca", "letzeburgesch": "lb", "pushto": "ps",
            "panjabi": "pa", "moldavian": "ro", "moldovan": "ro", "sinhalese": "si",
            "javanese": "jw"}  # fmt: skip


class UnknownLanguageError(ValueError):
    """A language that Whisper does not know."""

    def __init__(self, value: str) -> None:
        super().__init__(
            f"unknown language {value!r}; use one of Whisper's language codes: "
            + ", ".join(sorted(LANGUAGES))
        )


def normalise_language(value: str | None) -> str | None:
    """Return the Whisper code for a code or English name; None/''/'auto' mean detect."""
    if value is None:
        return None
    cleaned = value.strip().lower()
    if cleaned in ("", "auto", "detect"):
        return None
    if cleaned in LANGUAGES:
        return cleaned
    code = _BY_NAME.get(cleaned) or _ALIASES.get(cleaned)
    if code is None:
        # Accept regional tags such as "en-US" or "pt_BR" by their language part.
        base = cleaned.replace("_", "-").split("-", 1)[0]
        if base in LANGUAGES and base != cleaned:
            return base
        raise UnknownLanguageError(value)
    return code


def language_name(code: str) -> str:
    """The lower-case English name of a code ("en" -> "english")."""
    return LANGUAGES.get(code, code)

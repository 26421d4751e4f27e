// Whisper's languages: [code, English name], sorted by name.
// Mirrors app/transcription/languages.py; tests/web/test_languages_js.py keeps the two in step.
// Embedded here (not fetched) so the page needs no extra route and works offline.
export const LANGUAGES = [
  ["af", "Afrikaans"],
  ["sq", "Albanian"],
  ["am", "Amharic"],
  ["ar", "Arabic"],
  ["hy", "Armenian"],
  ["as", "Assamese"],
  ["az", "Azerbaijani"],
  ["ba", "Bashkir"],
  ["eu", "Basque"],
  ["be", "Belarusian"],
  ["bn", "Bengali"],
  ["bs", "Bosnian"],
  ["br", "Breton"],
  ["bg", "Bulgarian"],
  ["yue", "Cantonese"],
  ["ca", "Catalan"],
  ["zh", "Chinese"],
  ["hr", "Croatian"],
  ["cs", "Czech"],
  ["da", "Danish"],
  ["nl", "Dutch"],
  ["en", "English"],
  ["et", "Estonian"],
  ["fo", "Faroese"],
  ["fi", "Finnish"],
  ["fr", "French"],
  ["gl", "Galician"],
  ["ka", "Georgian"],
  ["de", "German"],
  ["el", "Greek"],
  ["gu", "Gujarati"],
  ["ht", "Haitian Creole"],
  ["ha", "Hausa"],
  ["haw", "Hawaiian"],
  ["he", "Hebrew"],
  ["hi", "Hindi"],
  ["hu", "Hungarian"],
  ["is", "Icelandic"],
  ["id", "Indonesian"],
  ["it", "Italian"],
  ["ja", "Japanese"],
  ["jw", "Javanese"],
  ["kn", "Kannada"],
  ["kk", "Kazakh"],
  ["km", "Khmer"],
  ["ko", "Korean"],
  ["lo", "Lao"],
  ["la", "Latin"],
  ["lv", "Latvian"],
  ["ln", "Lingala"],
  ["lt", "Lithuanian"],
  ["lb", "Luxembourgish"],
  ["mk", "Macedonian"],
  ["mg", "Malagasy"],
  ["ms", "Malay"],
  ["ml", "Malayalam"],
  ["mt", "Maltese"],
  ["mi", "Maori"],
  ["mr", "Marathi"],
  ["mn", "Mongolian"],
  ["my", "Myanmar"],
  ["ne", "Nepali"],
  ["no", "Norwegian"],
  ["nn", "Nynorsk"],
  ["oc", "Occitan"],
  ["ps", "Pashto"],
  ["fa", "Persian"],
  ["pl", "Polish"],
  ["pt", "Portuguese"],
  ["pa", "Punjabi"],
  ["ro", "Romanian"],
  ["ru", "Russian"],
  ["sa", "Sanskrit"],
  ["sr", "Serbian"],
  ["sn", "Shona"],
  ["sd", "Sindhi"],
  ["si", "Sinhala"],
  ["sk", "Slovak"],
  ["sl", "Slovenian"],
  ["so", "Somali"],
  ["es", "Spanish"],
  ["su", "Sundanese"],
  ["sw", "Swahili"],
  ["sv", "Swedish"],
  ["tl", "Tagalog"],
  ["tg", "Tajik"],
  ["ta", "Tamil"],
  ["tt", "Tatar"],
  ["te", "Telugu"],
  ["th", "Thai"],
  ["bo", "Tibetan"],
  ["tr", "Turkish"],
  ["tk", "Turkmen"],
  ["uk", "Ukrainian"],
  ["ur", "Urdu"],
  ["uz", "Uzbek"],
  ["vi", "Vietnamese"],
  ["cy", "Welsh"],
  ["yi", "Yiddish"],
  ["yo", "Yoruba"]
];

const BY_CODE = new Map(LANGUAGES.map(([code, name]) => [code, name]));
const AUTO_WORDS = new Set(["", "auto", "detect", "automatic", "detect automatically"]);

/** The text shown in the language field for a code ("" = detect automatically). */
export function languageLabel(code) {
  const name = BY_CODE.get(code);
  return name ? `${name} (${code})` : "";
}

/** The English name of a code, or the code itself when unknown. */
export function languageName(code) {
  return BY_CODE.get(code) || code;
}

/**
 * Read what someone typed into the language field.
 * Returns "" for automatic detection, a Whisper code, or null when nothing matches.
 */
export function resolveLanguage(input) {
  const typed = String(input ?? "").trim().toLowerCase();
  if (AUTO_WORDS.has(typed)) return "";
  for (const [code, name] of LANGUAGES) {
    const lowerName = name.toLowerCase();
    if (typed === code || typed === lowerName || typed === `${lowerName} (${code})`) return code;
  }
  // Regional tags such as "en-US" or "pt_BR" mean their language.
  const base = typed.replace("_", "-").split("-", 1)[0];
  return BY_CODE.has(base) ? base : null;
}

"use strict";
// The page's words in the agent's language: the server embeds them (<script id="i18n">, JSON)
// for the scripts the page loads (web/i18n.py). t() fills {name} placeholders and throws on a
// missing text or field, as the server's t() does: never an English fallback. Loaded before
// the page's other scripts (all deferred, so in order).
const I18N = JSON.parse(document.getElementById("i18n").textContent);
const LANG = document.documentElement.lang;

function t(key, fields) {
  const text = Object.hasOwn(I18N, key) ? I18N[key] : undefined;
  if (text === undefined) throw new Error(`no text ${key} in ${LANG}`);
  return text.replace(/\{([a-z_]+)\}/g, (_, name) => {
    if (!fields || !(name in fields)) throw new Error(`${key}: no value for {${name}}`);
    return String(fields[name]);
  });
}
// A stored value shown to a person (a state, a category): its text in the family; a value
// outside it (a pause reason typed at the CLI) is data, shown as it is.
function label(family, value) {
  const key = `${family}.${value}`;
  return Object.hasOwn(I18N, key) ? t(key) : String(value).replaceAll("_", " ");
}
// Dates, times and numbers as the language writes them (bs: 1. 12. 2026. 09:30, 2,5). For
// Bosnian the file names hr-HR: Chromium's ICU data claim bs-BA but format it as the root
// locale (2026-12-31, 1.5), and Croatian writes dates and numbers as Bosnian does.
const LOCALE = t("format.locale");
function fmtDateTime(iso) { return iso ? new Date(iso).toLocaleString(LOCALE) : "—"; }
function fmtDate(isoDate) { return isoDate ? new Date(isoDate).toLocaleDateString(LOCALE, {timeZone: "UTC"}) : "—"; }
function fmtTime(date) { return date.toLocaleTimeString(LOCALE); }
function fmtNumber(x) { return x == null ? "–" : Number(x).toLocaleString(LOCALE); }
// An error answer of the API: the text for its error_id, or the server's message framed in
// the language (a field's check names the field; its message starts "field: ").
function errorText(data, status) {
  if (data.error_id === "bad_field") {
    const field = data.field || "", message = String(data.message || "");
    return t("error.bad_field", {field, message: message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message});
  }
  const details = data.details || {};
  if (data.error_id === "published_since" && details.active_version != null) {
    // Who published what, and when, in the reader's words (the server's message is English).
    return t("error.published_since", {version: details.active_version, by: details.published_by || "?", at: fmtDateTime(details.published_at)});
  }
  if (data.error_id && Object.hasOwn(I18N, `error.${data.error_id}`)) return t(`error.${data.error_id}`);
  return t("error.other", {message: data.message || status});
}

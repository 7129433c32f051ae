"""Every word the intake page shows, in English and Spanish, and how a language is chosen.

A language is chosen by ``?lang=`` (the switch on every page), else by the browser's
``Accept-Language``, else English. Strings the page's script needs (progress, errors) travel
in the page as a JSON data block, never as code. To add a language, add a dict with the same
keys to ``TEXT`` (``tests/node/test_intake_input.py`` checks that every language has them all).
"""

from __future__ import annotations

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "language_name": "English",
        "quick_exit": "Quick exit",
        "quick_exit_hint": "Leave this site now. The page is replaced, so Back will not "
                           "return here.",
        "title_new": "Protect your images",
        "intro": "Choose the photos or videos you want to protect. They stay on this device. "
                 "We send only a fingerprint of each file (a code made from it), never the file.",
        "no_account": "You do not need an account.",
        "choose": "Choose photos or videos",
        "chosen": "Files you chose",
        "none_chosen": "No files chosen yet.",
        "remove": "Remove",
        "video": "Video",
        "reading": "Making the fingerprint…",
        "ready": "Fingerprint ready",
        "what_is_sent": "What will be sent",
        "send_summary": "{hashes} fingerprints of {files} files. Your files stay on this "
                        "device and are not sent.",
        "send_summary_one": "{hashes} fingerprints of 1 file. Your file stays on this device "
                            "and is not sent.",
        "show_hashes": "Show exactly what will be sent",
        "send": "Send the fingerprints",
        "sending": "Sending…",
        "done_title": "Your case is open",
        "reference": "Case reference",
        "pin": "PIN",
        "keep_safe": "Write these down or keep them somewhere safe and private. You need both "
                     "to check or withdraw your case. We cannot show them again.",
        "review_note": "A helpline will check your request before the fingerprints are shared "
                       "with other organisations.",
        "shared_note": "The fingerprints are now shared with other organisations.",
        "title_status": "Check your case",
        "title_withdraw": "Withdraw your case",
        "status_intro": "Enter the case reference and PIN you were given.",
        "withdraw_intro": "Withdrawing stops the fingerprints being used. Enter the case "
                          "reference and PIN you were given.",
        "check": "Check",
        "withdraw": "Withdraw",
        "withdrawn": "Your case is withdrawn.",
        "link_new": "Protect images",
        "link_status": "Check a case",
        "link_withdraw": "Withdraw a case",
        "language": "Language",
        "err_not_media": "{name}: only photos and videos can be added.",
        "err_image": "{name}: this image could not be read.",
        "err_too_many": "A case can hold at most {max} fingerprints. Remove some files.",
        "err_network": "The page could not reach the server. Try again.",
        "err_access": "That reference and PIN do not match a case.",
        "err_locked": "Too many wrong tries. Try again later.",
        "err_limited": "Too many requests from your connection. Try again later.",
        "err_expired": "This page expired. Reload it and try again.",
        "err_other": "Something went wrong. Nothing was saved. Try again.",
    },
    "es": {
        "language_name": "Español",
        "quick_exit": "Salida rápida",
        "quick_exit_hint": "Salir de este sitio ahora. La página se reemplaza y Atrás no "
                           "vuelve aquí.",
        "title_new": "Protege tus imágenes",
        "intro": "Elige las fotos o vídeos que quieres proteger. Se quedan en este dispositivo. "
                 "Solo enviamos una huella de cada archivo (un código hecho a partir de él), "
                 "nunca el archivo.",
        "no_account": "No necesitas una cuenta.",
        "choose": "Elegir fotos o vídeos",
        "chosen": "Archivos elegidos",
        "none_chosen": "Todavía no has elegido archivos.",
        "remove": "Quitar",
        "video": "Vídeo",
        "reading": "Creando la huella…",
        "ready": "Huella lista",
        "what_is_sent": "Qué se enviará",
        "send_summary": "{hashes} huellas de {files} archivos. Tus archivos se quedan en este "
                        "dispositivo y no se envían.",
        "send_summary_one": "{hashes} huellas de 1 archivo. Tu archivo se queda en este "
                            "dispositivo y no se envía.",
        "show_hashes": "Ver exactamente qué se enviará",
        "send": "Enviar las huellas",
        "sending": "Enviando…",
        "done_title": "Tu caso está abierto",
        "reference": "Referencia del caso",
        "pin": "PIN",
        "keep_safe": "Apúntalos o guárdalos en un lugar seguro y privado. Necesitas los dos "
                     "para consultar o retirar tu caso. No podemos volver a mostrarlos.",
        "review_note": "Una línea de ayuda revisará tu solicitud antes de compartir las "
                       "huellas con otras organizaciones.",
        "shared_note": "Las huellas ya se comparten con otras organizaciones.",
        "title_status": "Consulta tu caso",
        "title_withdraw": "Retira tu caso",
        "status_intro": "Escribe la referencia del caso y el PIN que recibiste.",
        "withdraw_intro": "Al retirar el caso, las huellas dejan de usarse. Escribe la "
                          "referencia del caso y el PIN que recibiste.",
        "check": "Consultar",
        "withdraw": "Retirar",
        "withdrawn": "Tu caso está retirado.",
        "link_new": "Proteger imágenes",
        "link_status": "Consultar un caso",
        "link_withdraw": "Retirar un caso",
        "language": "Idioma",
        "err_not_media": "{name}: solo se pueden añadir fotos y vídeos.",
        "err_image": "{name}: no se pudo leer esta imagen.",
        "err_too_many": "Un caso admite como máximo {max} huellas. Quita algunos archivos.",
        "err_network": "La página no pudo conectar con el servidor. Inténtalo de nuevo.",
        "err_access": "Esa referencia y ese PIN no corresponden a ningún caso.",
        "err_locked": "Demasiados intentos fallidos. Inténtalo más tarde.",
        "err_limited": "Demasiadas solicitudes desde tu conexión. Inténtalo más tarde.",
        "err_expired": "Esta página caducó. Vuelve a cargarla e inténtalo de nuevo.",
        "err_other": "Algo salió mal. No se guardó nada. Inténtalo de nuevo.",
    },
}
LANGUAGES = tuple(TEXT)
DEFAULT_LANGUAGE = "en"


def choose_language(query_lang: str | None, accept_language: str | None) -> str:
    """``?lang=`` if we have it, else the first of the browser's languages we have."""
    if query_lang in TEXT:
        return query_lang
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "")[:500].split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((-weight, index, tag.strip().lower().split("-")[0]))
    for _, _, base in sorted(ranked):
        if base in TEXT:
            return base
    return DEFAULT_LANGUAGE

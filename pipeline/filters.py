"""Which filter a frame was taken through, and its wavelength, from its FITS headers.

Used to order frames red -> blue (`pipeline.composite.order_frames`): the
PHOTPLAM keyword (HST pivot wavelength, Angstrom) first, then WAVELEN, then the
filter's name looked up in `FILTER_WAVELENGTHS` or read from an HST/JWST
`F<digits><W|M|N|LP>` name.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

#: Approximate central/pivot wavelengths in Angstrom of common filters, keyed by
#: normalised name (`_normalise_filter`). Johnson-Cousins (Bessell 1990), SDSS
#: (Fukugita et al. 1996), and the usual narrowband lines.
FILTER_WAVELENGTHS = {
    "U": 3660.0, "B": 4380.0, "V": 5450.0, "R": 6410.0, "I": 7980.0,
    "J": 12200.0, "H": 16300.0, "K": 21900.0, "KS": 21500.0,
    "u": 3551.0, "g": 4686.0, "r": 6166.0, "i": 7480.0, "z": 8932.0,
    "HALPHA": 6563.0, "HBETA": 4861.0, "OIII": 5007.0, "SII": 6724.0, "NII": 6584.0,
    "HEII": 4686.0, "OI": 6300.0,
}
_ALIASES = {"HA": "HALPHA", "HB": "HBETA", "O3": "OIII", "S2": "SII", "N2": "NII", "HE2": "HEII"}
#: Header keywords that may name a filter, in the order they are tried (ACS
#: keeps CLEAR in one wheel and the filter in the other; WFPC2 uses FILTNAM).
FILTER_KEYWORDS = ("FILTER", "FILTER1", "FILTER2", "FILTNAM1", "FILTNAM2", "FILTNAME", "PUPIL")
#: Instruments whose 3-4 digit filter names count in units of 10 nm (JWST,
#: HST NICMOS and WFC3/IR: F160W = 1.60 um) rather than nm (F555W = 555 nm).
_TEN_NM_INSTRUMENTS = ("NIRCAM", "NIRISS", "NIRSPEC", "MIRI", "NICMOS")
_NO_FILTER = ("CLEAR", "OPEN", "NONE", "N/A", "BLANK", "EMPTY", "")


def _normalise_filter(name: str) -> str:
    text = re.sub(r"[\s_\-\[\]()'\u2032]", "", str(name))
    if len(text) == 1:
        return text  # case tells Johnson R from SDSS r
    text = text.upper()
    for prefix in ("SDSS", "JOHNSON", "BESSELL", "COUSINS"):
        if text.startswith(prefix) and len(text) > len(prefix):
            rest = text[len(prefix):]
            return rest.lower() if prefix == "SDSS" and len(rest) == 1 else rest
    return _ALIASES.get(text, text)


def filter_wavelength(name: str, instrument: str = "", detector: str = "") -> Optional[float]:
    """Wavelength in Angstrom of a filter name, or None when the name is not known.

    HST/JWST names `F<digits><W|M|N|LP|X...>` give their wavelength directly:
    nm for HST optical/UV cameras, 10 nm for JWST, NICMOS and WFC3/IR.
    """
    key = _normalise_filter(name)
    if key in FILTER_WAVELENGTHS:
        return FILTER_WAVELENGTHS[key]
    m = re.fullmatch(r"F(\d{3,4})(W|M|N|LP|X|W2|MN|QN)?\d?", key.upper())
    if not m:
        return None
    ten_nm = instrument.upper() in _TEN_NM_INSTRUMENTS or (
        instrument.upper() == "WFC3" and detector.upper() == "IR")
    return float(m.group(1)) * (100.0 if ten_nm else 10.0)


def header_wavelength(headers: Sequence) -> tuple[Optional[str], Optional[float], str]:
    """(filter name, Angstrom or None, where it came from) from a frame's headers, first match wins.

    Args:
        headers: astropy Headers to search, in order (the image HDU's, then the primary).
    """
    def get(key):
        for h in headers:
            if key in h and h[key] not in (None, ""):
                return h[key]
        return None

    name = None
    for key in FILTER_KEYWORDS:
        value = get(key)
        if value is not None and str(value).strip().upper() not in _NO_FILTER and \
                not str(value).strip().upper().startswith("CLEAR"):
            name = str(value).strip()
            break
    photplam = get("PHOTPLAM")
    if isinstance(photplam, (int, float)) and photplam > 0:
        return name, float(photplam), "PHOTPLAM"
    wavelen = get("WAVELEN")
    if isinstance(wavelen, (int, float)) and wavelen > 0:
        # Unit not standardised: below 30 it can only be um, below 1200 nm, else Angstrom.
        factor = 1e4 if wavelen < 30 else (10.0 if wavelen < 1200 else 1.0)
        return name, float(wavelen) * factor, "WAVELEN"
    if name is not None:
        wl = filter_wavelength(name, str(get("INSTRUME") or ""), str(get("DETECTOR") or ""))
        if wl is not None:
            return name, wl, f"FILTER {name}"
    return name, None, "none"

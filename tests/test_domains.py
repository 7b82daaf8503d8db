"""The held-out-domain rule: which Stellarium credits are Hubble's."""
from data.domains import is_held_out_credit


def test_hubble_credits_are_held_out_and_surveys_are_not():
    for credit in ("NASA, ESA, the Hubble Heritage (STScI/AURA)-ESA/Hubble Collaboration", "ESA/Hubble & NASA",
                   "NASA", "Howard Bond (ST ScI) and NASA/ESA", "NASA, Holland Ford (JHU), the ACS Science Team and ESA",
                   "ESA/Hubble, Digitized Sky Survey 2"):
        assert is_held_out_credit(credit), credit
    for credit in ("NASA, ESA, Digitized Sky Survey 2", "DSS", "ESO", "Plover Hill Observatory", "", "Nasanov"):
        assert not is_held_out_credit(credit), credit

"""Clinical shorthand → plain language: the pairs the plain-language model is trained and scored on.

Written by this project for this project: the vocabularies and sentence templates below are our own work, and the
pairs they generate are under the project's license, free to use, change and ship. No outside text is in them.

A pair is a note as a clinician writes it and the same note in plain words:

    Pt c/o SOB x3d, hx of HTN.  →  The patient complains of shortness of breath for 3 days, with a history of
    high blood pressure.

`generate()` draws them from hand-written vocabularies (symptoms, conditions, drugs with their doses, routes and
frequencies, tests, procedures, body sites, vital signs, ...) put into sentence templates with a seeded
`random.Random`, so that the same arguments give the same pairs on any machine. `split()` holds out, by sha256:
- the notes whose text hashes into the first HELD_OUT_PERCENT percent: new sentences of familiar kinds;
- every note that uses a held-out template-term combination (one whose name hashes into the first
  HELD_OUT_COMBINATION_PERCENT percent): sentences in which a template meets a term it never met in training.
  The term itself is still seen in training in other templates.
"""

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SEED = 25
DEFAULT_COUNT = 12000
HELD_OUT_PERCENT = 7.0  # of the notes
HELD_OUT_COMBINATION_PERCENT = 3.0  # of template-term combinations: about 3 % of the notes


@dataclass(frozen=True)
class Term:
    """A word or phrase as written in a note (`short`) and in plain language (`plain`)."""

    short: str
    plain: str


@dataclass(frozen=True)
class Drug:
    """A drug as written in a note, its plain name, and the doses in mg and routes (`ROUTES`) notes use for it."""

    short: str
    plain: str
    doses_mg: tuple[str, ...]
    routes: tuple[str, ...]


@dataclass(frozen=True)
class Pair:
    """A note and its plain-language rewrite; `combinations` are the template-term names it uses."""

    source: str
    target: str
    template: str
    combinations: tuple[str, ...]


SYMPTOMS = (
    Term("SOB", "shortness of breath"),
    Term("CP", "chest pain"),
    Term("N/V", "nausea and vomiting"),
    Term("HA", "a headache"),
    Term("abd pain", "belly pain"),
    Term("DOE", "shortness of breath when active"),
    Term("LBP", "lower back pain"),
    Term("palps", "a racing heartbeat"),
    Term("diaphoresis", "heavy sweating"),
    Term("syncope", "fainting"),
    Term("vertigo", "a spinning feeling"),
    Term("dysuria", "pain when passing urine"),
    Term("hematuria", "blood in the urine"),
    Term("hemoptysis", "coughing up blood"),
    Term("epistaxis", "a nosebleed"),
    Term("pruritus", "itching"),
    Term("malaise", "a general feeling of being unwell"),
    Term("dysphagia", "trouble swallowing"),
    Term("anorexia", "loss of appetite"),
    Term("insomnia", "trouble sleeping"),
    Term("arthralgia", "joint pain"),
    Term("myalgia", "muscle aches"),
    Term("rhinorrhea", "a runny nose"),
    Term("photophobia", "sensitivity to light"),
    Term("tinnitus", "ringing in the ears"),
    Term("polyuria", "passing urine often"),
    Term("melena", "black, tarry stools"),
    Term("BRBPR", "bright red blood from the rectum"),
    Term("orthopnea", "shortness of breath when lying flat"),
    Term("fever/chills", "fever and chills"),
)

CONDITIONS = (
    Term("HTN", "high blood pressure"),
    Term("DM", "diabetes"),
    Term("DM2", "type 2 diabetes"),
    Term("HLD", "high cholesterol"),
    Term("CAD", "narrowed heart arteries"),
    Term("CHF", "heart failure"),
    Term("COPD", "chronic lung disease"),
    Term("CKD", "long-term kidney disease"),
    Term("afib", "an irregular heartbeat"),
    Term("MI", "a heart attack"),
    Term("CVA", "a stroke"),
    Term("TIA", "a mini-stroke"),
    Term("DVT", "a blood clot in the leg"),
    Term("PE", "a blood clot in the lung"),
    Term("GERD", "acid reflux"),
    Term("OA", "wear-and-tear arthritis"),
    Term("RA", "rheumatoid arthritis"),
    Term("hypothyroidism", "an underactive thyroid"),
    Term("BPH", "an enlarged prostate"),
    Term("OSA", "sleep apnea"),
    Term("PUD", "stomach ulcers"),
    Term("UTI", "a bladder infection"),
    Term("PNA", "pneumonia"),
    Term("URI", "a common cold"),
    Term("ESRD", "kidney failure"),
    Term("IBS", "irritable bowel syndrome"),
    Term("anemia", "a low red blood cell count"),
    Term("EtOH use d/o", "an alcohol use problem"),
    Term("sz d/o", "a seizure disorder"),
    Term("MDD", "depression"),
)

DRUGS = (
    Drug("ASA", "aspirin", ("81", "325"), ("PO", "PR")),
    Drug("APAP", "acetaminophen", ("325", "500", "650", "1000"), ("PO", "PR", "IV")),
    Drug("NTG", "nitroglycerin", ("0.4",), ("SL",)),
    Drug("HCTZ", "hydrochlorothiazide", ("12.5", "25", "50"), ("PO",)),
    Drug("MTX", "methotrexate", ("7.5", "10", "15"), ("PO", "subQ")),
    Drug("PCN VK", "penicillin", ("250", "500"), ("PO",)),
    Drug("KCl", "potassium chloride", ("10", "20", "40"), ("PO", "IV")),
    Drug("MSO4", "morphine", ("2", "4", "15"), ("PO", "IV", "subQ")),
    Drug("INH", "isoniazid", ("300",), ("PO",)),
    Drug("metop", "metoprolol", ("12.5", "25", "50", "100"), ("PO", "IV")),
    Drug("lisinopril", "lisinopril", ("5", "10", "20", "40"), ("PO",)),
    Drug("atorva", "atorvastatin", ("10", "20", "40", "80"), ("PO",)),
    Drug("warf", "warfarin", ("1", "2", "5"), ("PO",)),
    Drug("pred", "prednisone", ("5", "10", "20", "40", "60"), ("PO",)),
    Drug("amox", "amoxicillin", ("250", "500", "875"), ("PO",)),
    Drug("levo", "levothyroxine", ("25", "50", "75", "100"), ("PO",)),
    Drug("ibu", "ibuprofen", ("200", "400", "600", "800"), ("PO",)),
    Drug("CTX", "ceftriaxone", ("1000", "2000"), ("IV", "IM")),
    Drug("enox", "enoxaparin", ("40", "80"), ("subQ",)),
    Drug("ondans", "ondansetron", ("4", "8"), ("PO", "IV", "IM")),
    Drug("compazine", "prochlorperazine", ("5", "10", "25"), ("PO", "PR", "IM", "IV")),
)

ROUTES = (
    Term("PO", "by mouth"),
    Term("IV", "through a vein"),
    Term("IM", "as a shot into a muscle"),
    Term("SL", "under the tongue"),
    Term("subQ", "as a shot under the skin"),
    Term("PR", "through the rectum"),
)
_ROUTES = {route.short: route for route in ROUTES}

FREQUENCIES = (
    Term("daily", "once a day"),
    Term("QD", "once a day"),
    Term("BID", "twice a day"),
    Term("TID", "three times a day"),
    Term("QID", "four times a day"),
    Term("qHS", "at bedtime"),
    Term("qAM", "every morning"),
    Term("qwk", "once a week"),
    Term("PRN", "as needed"),
    Term("x1", "one time only"),
)
EVERY_N_HOURS = (4, 6, 8, 12)  # q4h, ... → every 4 hours, ...

TESTS = (
    Term("CBC", "a complete blood count"),
    Term("BMP", "a basic blood chemistry panel"),
    Term("CXR", "a chest X-ray"),
    Term("EKG", "a heart tracing"),
    Term("CT", "a CT scan"),
    Term("MRI", "an MRI scan"),
    Term("UA", "a urine test"),
    Term("LFTs", "a liver blood test"),
    Term("TSH", "a thyroid blood test"),
    Term("A1c", "a 3-month blood sugar test"),
    Term("ABG", "a blood oxygen test"),
    Term("echo", "an ultrasound of the heart"),
    Term("US", "an ultrasound"),
    Term("CTA", "a CT scan of the blood vessels"),
    Term("LP", "a spinal tap"),
    Term("EEG", "a brain wave test"),
    Term("PFTs", "a breathing test"),
    Term("BNP", "a heart strain blood test"),
    Term("trop", "a heart damage blood test"),
    Term("lipid panel", "a cholesterol test"),
)

FINDINGS = (
    Term("WNL", "was normal"),
    Term("neg", "showed nothing abnormal"),
    Term("unremarkable", "showed nothing of concern"),
    Term("pending", "is not back yet"),
)

PROCEDURES = (
    Term("lap chole", "surgery to remove the gallbladder"),
    Term("appy", "surgery to remove the appendix"),
    Term("CABG", "heart bypass surgery"),
    Term("TKA", "a knee replacement"),
    Term("THA", "a hip replacement"),
    Term("PCI", "a procedure to open a heart artery"),
    Term("C-section", "a cesarean delivery"),
    Term("ORIF", "surgery to fix a broken bone"),
    Term("EGD", "a scope exam of the stomach"),
    Term("TURP", "prostate surgery"),
    Term("CEA", "surgery on a neck artery"),
    Term("TAH", "surgery to remove the uterus"),
)

SPECIALISTS = (
    Term("PCP", "the primary care doctor"),
    Term("cards", "the heart doctor"),
    Term("GI", "the stomach and bowel doctor"),
    Term("ortho", "the bone doctor"),
    Term("neuro", "the nerve doctor"),
    Term("pulm", "the lung doctor"),
    Term("renal", "the kidney doctor"),
    Term("derm", "the skin doctor"),
    Term("endo", "the hormone doctor"),
    Term("uro", "the urinary tract doctor"),
    Term("onc", "the cancer doctor"),
    Term("ENT", "the ear, nose and throat doctor"),
    Term("psych", "the mental health doctor"),
    Term("PT", "the physical therapist"),
)

QUALITIES = (
    Term("pain", "pain"),
    Term("edema", "swelling"),
    Term("paresthesias", "tingling"),
    Term("numbness", "numbness"),
    Term("weakness", "weakness"),
    Term("erythema", "redness"),
    Term("ecchymosis", "bruising"),
    Term("stiffness", "stiffness"),
)

REGIONS = (
    Term("RLQ", "the lower right belly"),
    Term("LLQ", "the lower left belly"),
    Term("RUQ", "the upper right belly"),
    Term("LUQ", "the upper left belly"),
    Term("epigastrium", "the upper middle belly"),
)
SIDES = (Term("R", "right"), Term("L", "left"))
LIMBS = (
    Term("knee", "knee"),
    Term("hip", "hip"),
    Term("shoulder", "shoulder"),
    Term("ankle", "ankle"),
    Term("wrist", "wrist"),
    Term("elbow", "elbow"),
    Term("LE", "leg"),
    Term("UE", "arm"),
)

ACTIVITIES = (
    Term("ambulation", "walking"),
    Term("exertion", "physical effort"),
    Term("inspiration", "breathing in"),
    Term("palpation", "touch"),
    Term("ROM", "movement"),
    Term("PO intake", "eating"),
    Term("flexion", "bending"),
    Term("wt bearing", "putting weight on it"),
)

LIMITS = (  # what a drug is held for, with the range of the threshold
    (Term("SBP", "the top blood pressure number"), (85, 110)),
    (Term("HR", "the heart rate"), (50, 60)),
    (Term("BG", "the blood sugar"), (60, 80)),
    (Term("K", "the potassium level"), (3, 5)),
    (Term("plt", "the platelet count"), (50, 100)),
)

WARDS = (
    Term("ICU", "the intensive care unit"),
    Term("tele", "a heart-monitoring unit"),
    Term("CCU", "the cardiac care unit"),
    Term("the floor", "a regular hospital ward"),
    Term("obs", "observation"),
)

TREATMENTS = (
    Term("IV abx", "antibiotics through a vein"),
    Term("IVF", "fluids through a vein"),
    Term("O2", "oxygen"),
    Term("heparin gtt", "a blood thinner drip"),
    Term("insulin gtt", "an insulin drip"),
    Term("BiPAP", "a breathing support mask"),
    Term("nebs", "breathing treatments"),
    Term("PRBCs", "a blood transfusion"),
)

DURATION_UNITS = (Term("h", "hour"), Term("d", "day"), Term("wk", "week"), Term("mo", "month"))
AGO_UNITS = (Term("d", "day"), Term("wks", "week"), Term("mos", "month"), Term("yrs", "year"))

VOCABULARIES: dict[str, Sequence[Term | Drug]] = {
    "symptom": SYMPTOMS,
    "condition": CONDITIONS,
    "drug": DRUGS,
    "route": ROUTES,
    "frequency": FREQUENCIES,
    "test": TESTS,
    "finding": FINDINGS,
    "procedure": PROCEDURES,
    "specialist": SPECIALISTS,
    "quality": QUALITIES,
    "region": REGIONS,
    "limb": LIMBS,
    "activity": ACTIVITIES,
    "limit": [limit for limit, _ in LIMITS],
    "ward": WARDS,
    "treatment": TREATMENTS,
}


class _Draw:
    """One pair being drawn: picks terms and records which it used."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: list[str] = []

    def term(self, vocabulary: str, exclude: Sequence[Term | Drug] = ()) -> Term:
        chosen = self.rng.choice([t for t in VOCABULARIES[vocabulary] if t not in exclude])
        self.used.append(f"{vocabulary}:{chosen.short}")
        return Term(chosen.short, chosen.plain)

    def drug(self) -> Drug:
        drug = self.rng.choice(DRUGS)
        self.used.append(f"drug:{drug.short}")
        return drug

    def route(self, drug: Drug) -> Term:
        route = _ROUTES[self.rng.choice(drug.routes)]
        self.used.append(f"route:{route.short}")
        return route

    def terms(self, vocabulary: str, count: int) -> list[Term]:
        chosen: list[Term] = []
        for _ in range(count):
            chosen.append(self.term(vocabulary, exclude=chosen))
        return chosen


def _count(n: int | str, unit: str) -> str:
    return f"{n} {unit}" if str(n) == "1" else f"{n} {unit}s"


def _capitalized(text: str) -> str:
    return text[0].upper() + text[1:]


def _listed(words: Sequence[str], last: str) -> str:
    """'a', 'a and b', 'a, b and c' (`last` is the final conjunction)."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def _subject(draw: _Draw) -> Term:
    """The patient: 'Pt', or an age and sex such as '67 yo F' ('A 67-year-old woman')."""
    if draw.rng.random() < 0.5:
        return Term("Pt", "The patient")
    age = draw.rng.randint(18, 95)
    sex = draw.rng.choice((Term("M", "man"), Term("F", "woman")))
    article = "An" if age == 18 or 80 <= age <= 89 else "A"
    return Term(f"{age} {draw.rng.choice(('yo', 'y/o'))} {sex.short}", f"{article} {age}-year-old {sex.plain}")


def _duration(draw: _Draw) -> Term:
    unit = draw.rng.choice(DURATION_UNITS)
    n = draw.rng.randint(1, 12)
    return Term(f"x{n}{unit.short}", f"for {_count(n, unit.plain)}")


def _frequency(draw: _Draw) -> Term:
    if draw.rng.random() < 0.25:
        hours = draw.rng.choice(EVERY_N_HOURS)
        frequency = Term(f"q{hours}h", f"every {hours} hours")
        if draw.rng.random() < 0.5:
            return Term(f"{frequency.short} PRN", f"{frequency.plain} as needed")
        return frequency
    return draw.term("frequency")


def _complaint(draw: _Draw) -> tuple[str, str]:
    subject = _subject(draw)
    symptoms = draw.terms("symptom", draw.rng.choice((1, 1, 2)))
    duration = _duration(draw)
    source = f"{subject.short} c/o {_listed([s.short for s in symptoms], 'and')} {duration.short}"
    target = f"{subject.plain} complains of {_listed([s.plain for s in symptoms], 'and')} {duration.plain}"
    if draw.rng.random() < 0.5:
        condition = draw.term("condition")
        source += f", hx of {condition.short}"
        target += f", with a history of {condition.plain}"
    return source + ".", target + "."


def _denies(draw: _Draw) -> tuple[str, str]:
    symptoms = draw.terms("symptom", draw.rng.choice((1, 2, 3)))
    return (
        f"Denies {_listed([s.short for s in symptoms], 'or')}.",
        f"The patient does not have {_listed([s.plain for s in symptoms], 'or')}.",
    )


def _medication(draw: _Draw) -> tuple[str, str]:
    drug = draw.drug()
    dose = draw.rng.choice(drug.doses_mg)
    route = draw.route(drug)
    frequency = _frequency(draw)
    verb = draw.rng.choice(
        (
            Term("Start {drug}", "Start taking {drug}"),
            Term("Cont {drug}", "Keep taking {drug}"),
            Term("Incr {drug} to", "Increase {drug} to"),
            Term("Decr {drug} to", "Lower {drug} to"),
        )
    )
    dose_text = f"{dose} mg {{route}} {{frequency}}"
    return (
        f"{verb.short.format(drug=drug.short)} {dose_text.format(route=route.short, frequency=frequency.short)}.",
        f"{verb.plain.format(drug=drug.plain)} {dose_text.format(route=route.plain, frequency=frequency.plain)}.",
    )


def _stop(draw: _Draw) -> tuple[str, str]:
    drug = draw.drug()
    symptom = draw.term("symptom")
    return f"D/c {drug.short} d/t {symptom.short}.", f"Stop taking {drug.plain} because of {symptom.plain}."


def _hold(draw: _Draw) -> tuple[str, str]:
    drug = draw.drug()
    limit, (low, high) = draw.rng.choice(LIMITS)
    draw.used.append(f"limit:{limit.short}")
    value = draw.rng.randint(low, high)
    below = draw.rng.random() < 0.8
    return (
        f"Hold {drug.short} if {limit.short} {'<' if below else '>'} {value}.",
        f"Do not take {drug.plain} if {limit.plain} is {'below' if below else 'above'} {value}.",
    )


def _surgery(draw: _Draw) -> tuple[str, str]:
    procedure = draw.term("procedure")
    unit = draw.rng.choice(AGO_UNITS)
    n = draw.rng.randint(1, 12)
    source = f"S/p {procedure.short} {n} {unit.short} ago"
    target = f"The patient had {procedure.plain} {_count(n, unit.plain)} ago"
    if draw.rng.random() < 0.5:
        condition = draw.term("condition")
        source += f", c/b {condition.short}"
        target += f", complicated by {condition.plain}"
    return source + ".", target + "."


def _workup(draw: _Draw) -> tuple[str, str]:
    tests = draw.terms("test", draw.rng.choice((1, 2)))
    condition = draw.term("condition")
    verb = draw.rng.choice(("Order", "Obtain", "Get"))
    return (
        f"{verb} {_listed([t.short for t in tests], 'and')} to r/o {condition.short}.",
        f"The doctor ordered {_listed([t.plain for t in tests], 'and')} to rule out {condition.plain}.",
    )


def _result(draw: _Draw) -> tuple[str, str]:
    test = draw.term("test")
    if draw.rng.random() < 0.3:
        condition = draw.term("condition")
        finding = Term(f"c/w {condition.short}", f"showed signs of {condition.plain}")
    else:
        finding = draw.term("finding")
    return f"{test.short}: {finding.short}.", f"{_capitalized(test.plain)} {finding.plain}."


def _follow_up(draw: _Draw) -> tuple[str, str]:
    specialist = draw.term("specialist")
    unit = draw.rng.choice(AGO_UNITS)
    n = draw.rng.randint(1, 12)
    source = f"F/u w/ {specialist.short} in {n} {unit.short}"
    target = f"Follow up with {specialist.plain} in {_count(n, unit.plain)}"
    if draw.rng.random() < 0.5:
        condition = draw.term("condition")
        source += f" re: {condition.short}"
        target += f" about {condition.plain}"
    return source + ".", target + "."


def _site(draw: _Draw) -> tuple[str, str]:
    subject = _subject(draw)
    quality = draw.term("quality")
    if draw.rng.random() < 0.4:
        site = draw.term("region")
    else:
        side = draw.rng.choice(SIDES)
        limb = draw.term("limb")
        site = Term(f"{side.short} {limb.short}", f"the {side.plain} {limb.plain}")
    activity = draw.term("activity")
    return (
        f"{subject.short} c/o {quality.short} in {site.short}, worse w/ {activity.short}.",
        f"{subject.plain} complains of {quality.plain} in {site.plain}, which gets worse with {activity.plain}.",
    )


def _vital_signs(draw: _Draw) -> tuple[str, str]:
    rng = draw.rng
    systolic = rng.randint(85, 190)
    oxygen = rng.randint(85, 100)
    liters = rng.randint(1, 6)
    temperature = f"{rng.randint(355, 405) / 10:.1f}"
    readings = [
        Term(f"BP {systolic}/{rng.randint(45, min(systolic - 20, 120))}", "blood pressure {}"),
        Term(f"HR {rng.randint(40, 150)}", "heart rate {}"),
        Term(f"RR {rng.randint(10, 36)}", "breathing rate {}"),
        Term(f"T {temperature}", "temperature {}"),
        Term(f"wt {rng.randint(40, 160)} kg", "weight {}"),
        rng.choice(
            (
                Term(f"SpO2 {oxygen}% RA", f"oxygen level {oxygen}% on room air"),
                Term(
                    f"SpO2 {oxygen}% on {liters}L NC", f"oxygen level {oxygen}% on {_count(liters, 'liter')} of oxygen"
                ),
            )
        ),
    ]
    chosen = rng.sample(readings, rng.choice((2, 3)))
    plain = [r.plain.format(r.short.split(" ", 1)[1]) if "{}" in r.plain else r.plain for r in chosen]
    return f"VS: {', '.join(r.short for r in chosen)}.", f"Vital signs: {', '.join(plain)}."


def _admission(draw: _Draw) -> tuple[str, str]:
    ward = draw.term("ward")
    condition = draw.term("condition")
    treatments = draw.terms("treatment", draw.rng.choice((1, 2)))
    return (
        f"Adm to {ward.short} for {condition.short}, started on {_listed([t.short for t in treatments], '+')}.",
        f"Admitted to {ward.plain} for {condition.plain} and started on "
        f"{_listed([t.plain for t in treatments], 'and')}.",
    )


TEMPLATES: dict[str, Callable[[_Draw], tuple[str, str]]] = {
    "complaint": _complaint,
    "denies": _denies,
    "medication": _medication,
    "stop": _stop,
    "hold": _hold,
    "surgery": _surgery,
    "workup": _workup,
    "result": _result,
    "follow_up": _follow_up,
    "site": _site,
    "vital_signs": _vital_signs,
    "admission": _admission,
}


def generate(count: int = DEFAULT_COUNT, seed: int = SEED) -> list[Pair]:
    """`count` draws (template by turn, terms at random), duplicates dropped, in the order drawn."""
    rng = random.Random(seed)  # noqa: S311 (reproducible data, not secrets)
    names = sorted(TEMPLATES)
    seen: set[str] = set()
    pairs: list[Pair] = []
    for index in range(count):
        name = names[index % len(names)]
        draw = _Draw(rng)
        source, target = TEMPLATES[name](draw)
        if source in seen:
            continue
        seen.add(source)
        combinations = tuple(sorted({f"{name}|{used}" for used in draw.used}))
        pairs.append(Pair(source, target, name, combinations))
    return pairs


def vocabularies_by_template(pairs: Sequence[Pair]) -> dict[str, set[str]]:
    """For each vocabulary term ('symptom:SOB'), the templates that use it in `pairs`."""
    templates: dict[str, set[str]] = {}
    for pair in pairs:
        for combination in pair.combinations:
            template, _, term = combination.partition("|")
            templates.setdefault(term, set()).add(template)
    return templates


def _hashed_in(name: str, percent: float) -> bool:
    bucket = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % 10_000
    return bucket < percent * 100


def held_out_combinations(pairs: Sequence[Pair]) -> set[str]:
    """The 'template|vocabulary:term' combinations held out: those whose hash falls in the held-out share, unless
    every template that uses the term would be held out with it (the term must be seen in training)."""
    held_out: set[str] = set()
    for term, templates in vocabularies_by_template(pairs).items():
        hashed_in = {
            template for template in templates if _hashed_in(f"{template}|{term}", HELD_OUT_COMBINATION_PERCENT)
        }
        if hashed_in != templates:
            held_out.update(f"{template}|{term}" for template in hashed_in)
    return held_out


def split(pairs: Sequence[Pair]) -> tuple[list[Pair], list[Pair]]:
    """(training, held-out), as the module docstring says."""
    combinations = held_out_combinations(pairs)

    def held(pair: Pair) -> bool:
        return _hashed_in(pair.source, HELD_OUT_PERCENT) or not combinations.isdisjoint(pair.combinations)

    return [pair for pair in pairs if not held(pair)], [pair for pair in pairs if held(pair)]

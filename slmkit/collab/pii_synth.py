"""Synthetic training sentences for the PII tagger: slmkit's own templates and word lists, no user data.

`synthetic_records(n)` fills the templates below with generated names, organisations, street
addresses and places, in the record layout the tagger trains on ({"full_text", "spans",
"template_id"}), so `--privacy-tagger builtin` can train a tagger on first use without any data
set. Values vary the way real text does: initials, titles, lower and upper case, one-line and
multi-line addresses, house numbers before or after the street.
"""

from __future__ import annotations

import random
import re

from slmkit.collab.places import PLACES

SYNTH_VERSION = 1  # bump when templates or word lists change: cached built-in taggers are then retrained

FIRST_NAMES = """
James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan Joseph Jessica
Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony Betty Mark Sandra Steven Ashley Paul Emily Andrew Donna
Joshua Michelle Kevin Carol Brian Amanda George Melissa Timothy Deborah Ronald Stephanie Jason Rebecca Ryan Laura
Jacob Helen Gary Sharon Nicholas Cynthia Eric Kathleen Jonathan Amy Stephen Angela Larry Shirley Justin Anna Scott
Ruth Brandon Brenda Frank Pamela Gregory Nicole Raymond Katherine Samuel Samantha Patrick Christine Alexander Emma
Jack Catherine Dennis Debra Jerry Virginia Tyler Rachel Aaron Carolyn Jose Janet Henry Maria Adam Heather Douglas
Diane Nathan Julie Peter Joyce Zachary Victoria Kyle Kelly Walter Christina Harold Lauren Jeremy Joan Ethan Evelyn
Carl Olivia Keith Judith Roger Megan Gerald Cheryl Christian Martha Terry Andrea Sean Frances Arthur Hannah Austin
Jacqueline Noah Ann Lawrence Gloria Jesse Jean Joe Kathryn Bryan Alice Billy Teresa Jordan Sara Albert Janice Dylan
Doris Bruce Madison Willie Julia Gabriel Grace Alan Judy Juan Abigail Logan Marie Wayne Denise Ralph Beverly Roy
Amber Eugene Theresa Randy Marilyn Vincent Danielle Russell Diana Louis Brittany Philip Natalie Bobby Sophia Johnny
Rose Bradley Isabella Lars Ingrid Sven Astrid Magnus Freya Nils Sigrid Erik Helga Jens Kirsten Mikko Aino Juha Liisa
Jan Zuzana Tomas Petra Jiri Eva Pavel Katarina Marek Agnieszka Piotr Magdalena Krzysztof Ewa Andrzej Janusz Dorota
Giulia Marco Chiara Luca Francesca Alessandro Paola Matteo Sofia Lorenzo Elena Pierre Camille Louis Chloe Antoine
Manon Julien Amelie Hugo Lea Mathieu Ines Hans Greta Klaus Ursula Jurgen Anke Wolfgang Heike Dieter Sabine Carlos
Lucia Javier Carmen Alejandro Pilar Diego Rosa Miguel Isabel Joao Ana Pedro Beatriz Rafael Mariana Tiago Leticia
Hiroshi Yuki Kenji Aiko Takeshi Naomi Wei Mei Jun Ling Hao Xin Min Jae Soo Ji Arjun Priya Rahul Ananya Vikram Deepa
Mohammed Fatima Ahmed Aisha Omar Layla Yusuf Zainab Ali Noor Kwame Amara Chidi Ngozi Tunde Adaeze Kofi Abena Ivan
Olga Dmitri Natasha Sergei Irina Alexei Svetlana Oleg Tatiana Gudrun Einar Sigrun Bjorn Hallgrim Dagny Ragnar Asta
"""

LAST_NAMES = """
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson Anderson
Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young
Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter
Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers
Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez
Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez
Andersen Nielsen Hansen Pedersen Larsen Jensen Christensen Johansson Karlsson Nilsson Eriksson Lindqvist Berg Dahl
Virtanen Korhonen Nieminen Makinen Hamalainen Laine Heikkinen Novak Svoboda Dvorak Cerny Prochazka Kowalski Nowak
Wisniewski Wojcik Kaminski Lewandowski Zielinski Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino
Greco Bruno Gallo Conti Dubois Durand Lefebvre Moreau Laurent Simon Michel Leroy Roux Fournier Girard Muller
Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Koch Richter Klein Wolf Neumann Braun Zimmermann
Silva Santos Oliveira Souza Pereira Costa Ferreira Almeida Carvalho Gomes Tanaka Suzuki Takahashi Watanabe Ito
Yamamoto Nakamura Kobayashi Wang Li Zhang Liu Chen Yang Huang Zhao Wu Zhou Park Choi Jung Kang Cho Yoon Sharma
Gupta Singh Kumar Reddy Iyer Menon Rao Khan Hussain Rahman Haddad Nasser Farouk Mansour Okafor Mensah Adeyemi Owusu
Boateng Nwosu Ivanov Petrov Smirnov Volkov Sokolov Popov Kuznetsov Jonsson Gudmundsson Sigurdsson Olafsdottir
O'Brien O'Connor McCarthy MacLeod Fitzgerald Van Dijk De Vries Van den Berg Janssen Bakker Visser Smit Meijer
"""

TITLES = ["Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "Miss", "Sir", "Mx."]

BRAND_PARTS = """
blue river nova apex quantum stone bright north summit harbor cedar silver iron golden open clear swift prime vertex
orbit pixel cloud data smart green true next first global urban pacific atlas beacon crest delta echo falcon
granite horizon lumen maple meridian nimbus oak pioneer radiant sterling titan vista willow zenith arbor cobalt
ember fjord glacier helix jade keystone lattice mosaic onyx prism quarry rover sable tundra umber vector wharf
"""

ORG_FORMS = ["{A} {B} Inc.", "{A}{b}", "{A} {B} Ltd", "{L} & {L2}", "{L}, {L2} and {L3}", "{A} {B} Group", "{A}{b} Labs",
             "{L} {B} LLC", "{A} {B}", "{A}{b} GmbH", "{L}-{L2}", "{A} Bank of {P}", "University of {P}", "{A}{b} AG",
             "{L} & Sons", "{A} {B} Partners", "{A}{b} Systems", "{P} {B} Holdings", "{A}{b} S.A.", "{L} Consulting"]

STREET_WORDS = """
Oak Maple Pine Cedar Elm Church Mill Park Lake Hill River Spring Market Station King Queen Victoria Bridge Garden
Chestnut Willow Birch Meadow Forest Highland Sunset Lincoln Washington Jefferson Madison Franklin Harbor Orchard
Linden Rosen Berg Wald Kirch Schiller Goethe Mozart Beethoven Bahnhof Haupt Dorf Sonnen Markt Tal Feld
"""
STREET_TYPES = ["Street", "St.", "Road", "Rd", "Avenue", "Ave.", "Lane", "Drive", "Boulevard", "Way", "Court", "Place",
                "Terrace", "Crescent", "Close", "Row", "Square", "Parkway", "Circle", "Trail", "Loop", "Pass", "Path"]
FOREIGN_STREETS = ["{W}straße", "{W}weg", "{W}gasse", "{W}vej", "{W}gade", "{W}gatan", "{W}katu", "{W}tie", "{W}laan",
                   "{W}straat", "Rue de la {W}", "Rue {L}", "Avenue {L}", "Via {L}", "Via del {W}", "Calle {W}",
                   "Avenida {L}", "Rua do {W}", "Piazza {L}", "ulica {L}", "{W}plein"]
STATES = ["CA", "NY", "TX", "WA", "FL", "IL", "ON", "BC", "NSW", "VIC", "BY", "NRW", "ZH", "QC"]
SYLLABLES = "ka lo mi ra ten vik sa du bel hol mar ton ber gen fors hav lund strom dal by rup ing sted heim".split()


def _words(block: str) -> list[str]:
    return block.split()


def invented_word(rng: random.Random, parts: int = 3) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def person(rng: random.Random) -> str:
    first, last = rng.choice(_words(FIRST_NAMES)), rng.choice(_words(LAST_NAMES))
    form = rng.random()
    if form < 0.45:
        name = f"{first} {last}"
    elif form < 0.6:
        name = first
    elif form < 0.7:
        name = last
    elif form < 0.8:
        name = f"{first} {rng.choice('ABCDEFGHJKLMNPRSTW')}. {last}"
    elif form < 0.9:
        name = f"{first} {rng.choice(_words(LAST_NAMES))}-{last}"
    else:
        name = f"{first[0]}. {last}"
    return name


def organisation(rng: random.Random) -> str:
    brand = _words(BRAND_PARTS)
    fill = {"A": rng.choice(brand).capitalize(), "B": rng.choice(brand).capitalize(), "b": rng.choice(brand),
            "L": rng.choice(_words(LAST_NAMES)), "L2": rng.choice(_words(LAST_NAMES)), "L3": rng.choice(_words(LAST_NAMES)),
            "P": rng.choice(PLACES)}
    if rng.random() < 0.15:
        return invented_word(rng, rng.randint(2, 4))
    return rng.choice(ORG_FORMS).format(**fill)


def place(rng: random.Random) -> str:
    return rng.choice(PLACES) if rng.random() < 0.6 else invented_word(rng, rng.randint(2, 3))


def street(rng: random.Random) -> str:
    number = str(rng.randint(1, 9999 if rng.random() < 0.5 else 99))
    if rng.random() < 0.5:
        name = f"{rng.choice(_words(STREET_WORDS))} {rng.choice(STREET_TYPES)}"
        line = f"{number}{rng.choice(['', '', 'B', 'a'])} {name}"
    else:
        name = rng.choice(FOREIGN_STREETS).format(W=rng.choice(_words(STREET_WORDS)), L=rng.choice(_words(LAST_NAMES)))
        line = f"{name} {number}" if rng.random() < 0.6 else f"{number} {name}"
    if rng.random() < 0.3:
        line += f"{rng.choice([', ', ' ', chr(10)])}{rng.choice(['Apt.', 'Suite', 'Unit', 'Flat', 'Apartment'])} {rng.randint(1, 999)}"
    return line


def address(rng: random.Random) -> str:
    """A street line, often followed by a post code, a city, a state and a country, on one line or several."""
    parts = [street(rng)]
    if rng.random() < 0.7:
        code = str(rng.randint(1000, 99999)).zfill(5) if rng.random() < 0.7 else f"{rng.randint(1000, 9999)}"
        city = place(rng)
        parts.append(f"{code} {city}" if rng.random() < 0.5 else city)
        if rng.random() < 0.4:
            parts.append(f"{rng.choice(STATES)} {code}")
        if rng.random() < 0.4:
            parts.append(rng.choice(PLACES))
    sep = rng.choice([", ", "\n", ",\n ", " "])
    return sep.join(parts)


TEMPLATES = [
    "My name is {PERSON} and I live at {STREET_ADDRESS}.",
    "Please send the invoice to {PERSON}, {ORGANIZATION}, {STREET_ADDRESS}.",
    "{PERSON} works for {ORGANIZATION} in {GPE}.",
    "Can you draft a letter from {PERSON} to {PERSON} about the delayed shipment?",
    "Our office moved to {STREET_ADDRESS}; the new phone line is not set up yet.",
    "I met {PERSON} at the {ORGANIZATION} conference last spring.",
    "Ship to:\n{PERSON}\n{STREET_ADDRESS}",
    "{ORGANIZATION} announced that {PERSON} will lead the {GPE} branch.",
    "Is {STREET_ADDRESS} close to the train station in {GPE}?",
    "hi, this is {PERSON} from {ORGANIZATION}, calling about my order",
    "Dear {PERSON},\nthank you for your application to {ORGANIZATION}.",
    "We are flying from {GPE} to {GPE} next week with {PERSON}.",
    "Summarise this complaint: {PERSON} says the parcel sent to {STREET_ADDRESS} never arrived.",
    "Who is the contact person at {ORGANIZATION}? I think it was {PERSON}.",
    "The meeting with {ORGANIZATION} is at their office on {STREET_ADDRESS}.",
    "{PERSON} and {PERSON} signed the lease for {STREET_ADDRESS}.",
    "Translate to French: {PERSON} has moved to {GPE}.",
    "Billing address:\n{PERSON}\n{ORGANIZATION}\n{STREET_ADDRESS}",
    "I used to live in {GPE} but moved to {STREET_ADDRESS} last year.",
    "Write a reference letter for {PERSON}, who interned at {ORGANIZATION}.",
    "The package for {PERSON} should go to {STREET_ADDRESS} instead.",
    "{ORGANIZATION} v. {ORGANIZATION}: summarise the ruling.",
    "Remind {PERSON} to call {PERSON} before Friday.",
    "According to {PERSON}, {ORGANIZATION} will open a store in {GPE}.",
    "Update my address to {STREET_ADDRESS}, please.",
    "{PERSON} ({ORGANIZATION}) asked for the slides.",
    "Book a table for {PERSON} near {STREET_ADDRESS}.",
    "My manager {PERSON} wants the report by Monday.",
    "{GPE} is where {PERSON} grew up.",
    "The customer, {PERSON}, disputes the charge from {ORGANIZATION}.",
    "What's the fastest route from {STREET_ADDRESS} to the airport?",
    "{PERSON} wrote: \"see you at {STREET_ADDRESS} at noon\"",
    "Please forward this to {PERSON} at {ORGANIZATION}.",
    "the corner of {STREET_ADDRESS} and {STREET_ADDRESS}",
    "Employee: {PERSON}; employer: {ORGANIZATION}; location: {GPE}",
    "Can {ORGANIZATION} deliver to {GPE}?",
    "I'm {PERSON}, a nurse at {ORGANIZATION}.",
    "Send the contract to {PERSON} c/o {ORGANIZATION}, {STREET_ADDRESS}",
    "{PERSON} said {PERSON} would bring the documents.",
    "Our supplier {ORGANIZATION} is based at {STREET_ADDRESS}.",
]
SLOTS = {"PERSON": person, "ORGANIZATION": organisation, "STREET_ADDRESS": address, "GPE": place}


def cased(rng: random.Random, text: str) -> str:
    """Most sentences as written; some all lower case, a few all upper case."""
    roll = rng.random()
    return text.lower() if roll < 0.12 else text.upper() if roll < 0.17 else text


def synthetic_records(n: int, seed: int = 0) -> list[dict]:
    """`n` filled templates with their gold spans, in the tagger's record layout."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        template_id = rng.randrange(len(TEMPLATES))
        text, spans, last = "", [], 0
        template = TEMPLATES[template_id]
        for match in re.finditer(r"\{(\w+)\}", template):
            text += template[last:match.start()]
            value = SLOTS[match.group(1)](rng)
            if match.group(1) == "PERSON" and rng.random() < 0.1:
                text += rng.choice(TITLES) + " "
            spans.append({"entity_type": match.group(1), "start_position": len(text), "end_position": len(text) + len(value)})
            text += value
            last = match.end()
        text += template[last:]
        records.append({"full_text": text, "spans": spans, "template_id": template_id})
    return [recase(rng, r) for r in records]


def recase(rng: random.Random, record: dict) -> dict:
    """The same record in another case (positions do not move for these letters)."""
    text = cased(rng, record["full_text"])
    return {**record, "full_text": text} if len(text) == len(record["full_text"]) else record

"""A small real corpus with four clear topics, for tests that must run without ../shared."""

from __future__ import annotations

TOPICS = {
    "cooking": [
        "Simmer the tomato sauce with garlic and basil for twenty minutes.",
        "Knead the bread dough until it is smooth, then let it rise in a warm kitchen.",
        "Roast the chicken in the oven at two hundred degrees until the skin is crisp.",
        "Whisk the eggs with sugar and fold in the flour to make a sponge cake.",
        "Season the soup with salt, pepper and a splash of lemon juice before serving.",
        "Fry the onions slowly in butter until they caramelise.",
        "Marinate the beef overnight in soy sauce, ginger and honey.",
        "Bake the pastry blind before adding the custard filling.",
    ],
    "space": [
        "The rocket launched from Cape Canaveral carrying a communications satellite.",
        "Astronauts on the space station performed a six-hour spacewalk.",
        "The telescope captured images of a distant galaxy and its spiral arms.",
        "NASA plans to return astronauts to the Moon with the Artemis program.",
        "The Mars rover drilled into the rock to collect samples for analysis.",
        "A comet passed close to the Sun and grew a bright tail.",
        "The probe entered orbit around Jupiter after a five-year journey.",
        "Engineers tested the rocket engine on the launch pad before the mission.",
    ],
    "football": [
        "The striker scored twice in the second half to win the match.",
        "The goalkeeper saved a penalty in the final minute of the game.",
        "The team's coach changed the formation after the defeat at home.",
        "Fans filled the stadium for the cup final against their rivals.",
        "The referee showed a red card after a dangerous tackle.",
        "The club signed a new midfielder from a league rival.",
        "The league title was decided on goal difference on the last day.",
        "The winger crossed the ball and the captain headed it into the net.",
    ],
    "programming": [
        "The function returns a list of strings after parsing the input file.",
        "Fix the bug by checking for a null pointer before dereferencing it.",
        "The compiler reported a type error in the generic class definition.",
        "Write unit tests for the parser and run them in continuous integration.",
        "The Python script reads the CSV file and writes JSON output.",
        "Refactor the module so that the database code lives behind an interface.",
        "The program crashed with a stack overflow caused by infinite recursion.",
        "Use a hash map to look up each key in constant time.",
    ],
}

TEXTS = [text for texts in TOPICS.values() for text in texts]
LABELS = [topic for topic, texts in TOPICS.items() for _ in texts]

"""Figures the SMART paper's experiments start from, embedded for ``smart bench paper``.

Source: Jo & Trummer 2024, "SMART: Automatically Scaling Down Language Models with Accuracy
Guarantees for Reduced Processing Fees" (arXiv 2403.13835). Agreement of each OpenAI model with
gpt-4 was measured on 100 real items per dataset; the paper simulates each item's agreement as an
independent Bernoulli draw with these rates. Prices are USD per 1,000 tokens as the paper used.
"""

from __future__ import annotations

__all__ = ["CITATION", "DATASETS", "PRICES_PER_1K", "PUBLISHED_SAVINGS", "REFERENCE"]

CITATION = (
    "Jo & Trummer 2024, SMART: Automatically Scaling Down Language Models with Accuracy "
    "Guarantees for Reduced Processing Fees, arXiv 2403.13835"
)
REFERENCE = "gpt-4"

#: (input, output) USD per 1,000 tokens.
PRICES_PER_1K: dict[str, tuple[float, float]] = {
    "gpt-4": (0.03, 0.06),
    "gpt-3.5-turbo-1106": (0.001, 0.002),
    "babbage-002": (0.0004, 0.0004),
    "davinci-002": (0.002, 0.002),
    "gpt-3.5-turbo-instruct": (0.0015, 0.002),
}

#: dataset -> (items, {model: (agreement with gpt-4, prompt tokens, completion tokens)})
DATASETS: dict[str, tuple[int, dict[str, tuple[float, float, float]]]] = {
    "imdb": (
        50000,
        {
            "davinci-002": (0.0, 309.0, 15.99),
            "gpt-4": (1.0, 316.0, 1.0),
            "babbage-002": (0.0, 309.0, 16.0),
            "gpt-3.5-turbo-instruct": (0.96, 309.0, 1.03),
            "gpt-3.5-turbo-1106": (0.94, 316.0, 1.0),
        },
    ),
    "sms_spam": (
        5574,
        {
            "davinci-002": (0.0, 43.38, 16.0),
            "gpt-4": (1.0, 50.38, 2.0),
            "babbage-002": (0.0, 43.38, 16.0),
            "gpt-3.5-turbo-instruct": (0.88, 43.38, 2.13),
            "gpt-3.5-turbo-1106": (0.94, 50.38, 2.0),
        },
    ),
    "ag_news": (
        127600,
        {
            "davinci-002": (0.01, 78.54, 15.86),
            "gpt-4": (1.0, 85.54, 1.36),
            "babbage-002": (0.0, 78.54, 16.0),
            "gpt-3.5-turbo-instruct": (0.94, 78.54, 1.38),
            "gpt-3.5-turbo-1106": (0.9, 85.54, 1.34),
        },
    ),
}

#: The published method's median savings factor on this setup (its own code; 10 seeds for
#: sms_spam, 3-4 for imdb and ag_news), per epsilon in 0.02, 0.05, 0.10, 0.15, 0.20.
PUBLISHED_SAVINGS: dict[str, dict[float, float]] = {
    "imdb": {0.02: 1.31, 0.05: 11.9, 0.1: 19.9, 0.15: 29.6, 0.2: 30.0},
    "ag_news": {0.02: 1.14, 0.05: 3.48, 0.1: 21.2, 0.15: 30.5, 0.2: 30.5},
    "sms_spam": {0.02: 1.14, 0.05: 1.89, 0.1: 17.4, 0.15: 22.5, 0.2: 24.7},
}

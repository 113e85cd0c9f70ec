def shout(word: str, suffix: str) -> str:
    return word.upper() + suffix

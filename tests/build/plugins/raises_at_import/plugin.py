import proxywasm

SETTINGS = {"limit": 10}


def broken():
    return SETTINGS["missing"]  # line 7


broken()

"""Every pure decision of Centrala: no I/O, no asyncio, no database, no logging.

May import only ``core`` itself, the standard library's pure parts and pure libraries
(phonenumbers, pydantic). Everything else may import it.
"""

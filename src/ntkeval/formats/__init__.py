"""Answer formats: direct, chain-of-thought, program-of-thought, work memory, hybrid; the interface is ntkeval.formats.base."""

"""Author-year labels in the bibliography, the same as the citations in the text.

The book cites with ``bibtex_reference_style: author_year``, so the text reads
"[Ho et al., 2020]"; the bibliography's labels come from the pybtex formatting style, whose
default ("alpha") writes "[HJA20]". This extension registers the formatting style
``author_year_labels`` (set as ``bibtex_default_style`` in ``_config.yml``): pybtex's alpha
style (same entries, same sorting by author, year, title) with a label style that writes the
citation's text, "Ho et al., 2020", built with the same name style as the citations
(sphinxcontrib-bibtex's "last"): one author "Ho", two "Nichol and Dhariwal", three or more
"Ho et al.". Equal labels get a letter after the year ("2020a", "2020b"), as BibTeX does.
"""

from collections import Counter

from pybtex.plugin import find_plugin, register_plugin
from pybtex.style.formatting.alpha import Style as AlphaStyle
from pybtex.style.labels import BaseLabelStyle


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels "Author, year" / "A and B, year" / "A et al., year"."""

    def format_labels(self, sorted_entries):
        labels = [self.format_label(entry) for entry in sorted_entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:
            if counts[label] > 1:
                seen[label] += 1
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            else:
                yield label

    def format_label(self, entry) -> str:
        persons = entry.persons.get("author") or entry.persons.get("editor") or []
        last = find_plugin("pybtex.style.names", "last")()
        names = [last.format(person, True).format().render_as("text") for person in persons]
        if not names:
            who = entry.fields.get("title", entry.key)
        elif len(names) == 1:
            who = names[0]
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelsStyle(AlphaStyle):
    default_label_style = "author_year"


def setup(app):
    register_plugin("pybtex.style.labels", "author_year", AuthorYearLabelStyle)
    register_plugin("pybtex.style.formatting", "author_year_labels", AuthorYearLabelsStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

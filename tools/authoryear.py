"""A Sphinx extension: the bibliography labels its entries by author and year, as the
text cites them ("Ioffe and Szegedy, 2015"), instead of pybtex's alpha labels ("IS15").

_config.yml loads it (``sphinx.local_extensions``) and names the style it registers,
``authoryear``, in ``bibtex_default_style``.
"""

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def author_year(entry):
    """'Wu and He, 2018'; 'Santurkar et al., 2018' for three or more authors; a name's
    particle kept, as the citations in the text keep it: 'van Laarhoven, 2017'."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [" ".join(person.prelast_names + person.last_names) for person in people]
    if len(names) > 2:
        who = f"{names[0]} et al."
    else:
        who = " and ".join(names)
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        seen = {}
        for entry in sorted_entries:
            label = author_year(entry)
            seen[label] = seen.get(label, 0) + 1
            # a second work of the same authors and year: 2018b (rare; none yet)
            yield label if seen[label] == 1 else f"{label}{'abcdefgh'[seen[label] - 1]}"


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "authoryear"
    default_sorting_style = "author_year_title"


def setup(app):
    register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

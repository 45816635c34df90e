/* Two things a phone reader needs that CSS alone cannot give.

   1. Sphinx already makes each figure a link to its image file; the link is marked
      "bn-enlarge", so that custom.css can say under the figure, on a narrow screen,
      that a tap opens it full size.
   2. A printed table keeps its columns: a printed output in which two lines have a gap
      of two or more spaces ending at the same column (outside NumPy's brackets) is
      marked "bn-table", and custom.css lets it scroll sideways in its own box instead
      of wrapping; other printed output (sentences) still wraps. */
function isTable(text) {
  const seen = new Set();
  for (const line of text.split("\n")) {
    const masked = line.replace(/\[[^\]]*\]/g, (m) => "x".repeat(m.length));
    const columns = new Set();
    for (const gap of masked.matchAll(/\S( {2,})(?=\S)/g))
      columns.add(gap.index + 1 + gap[1].length);
    for (const column of columns) {
      if (seen.has(column)) return true;
      seen.add(column);
    }
  }
  return false;
}

document.addEventListener("DOMContentLoaded", () => {
  for (const img of document.querySelectorAll("main .cell_output img")) {
    let link = img.closest("a");
    if (!link) {
      link = document.createElement("a");
      link.href = img.src;
      img.replaceWith(link);
      link.appendChild(img);
    }
    link.classList.add("bn-enlarge");
    link.title = "Open the figure full size";
  }
  for (const pre of document.querySelectorAll("main .cell_output .output.stream pre")) {
    if (isTable(pre.textContent)) pre.classList.add("bn-table");
  }
});

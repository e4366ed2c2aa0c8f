// A plain table of a few rows: a caption, column headers, and cells (text,
// or {text, class}).
export function SimpleTable({ caption, columns, rows, testid }) {
  return (
    <table class="rows" data-testid={testid}>
      {caption && <caption>{caption}</caption>}
      <thead>
        <tr>
          {columns.map((c) => (
            <th scope="col">{c}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr>
            {r.map((cell) => (cell !== null && typeof cell === 'object' && 'text' in cell ? <td class={cell.class}>{cell.text}</td> : <td>{cell}</td>))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

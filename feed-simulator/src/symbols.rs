//! Symbol names: real US tickers first, generated names beyond.
//!
//! Real names make a simulated stream look like the market a reader knows
//! (and let demos subscribe to `AAPL`). The list is ordered roughly by how
//! actively each name trades, because the generator gives the first symbols
//! the most activity.

/// Real US-listed tickers, most active first.
const REAL_TICKERS: &[&str] = &[
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AVGO", "BRK.B", "JPM", //
    "LLY", "V", "UNH", "XOM", "MA", "JNJ", "PG", "HD", "COST", "ABBV", //
    "MRK", "WMT", "NFLX", "CRM", "BAC", "CVX", "KO", "AMD", "PEP", "TMO", //
    "ADBE", "LIN", "ORCL", "ACN", "MCD", "CSCO", "ABT", "WFC", "DHR", "TMUS", //
    "INTC", "DIS", "QCOM", "INTU", "VZ", "AMGN", "TXN", "IBM", "CAT", "PFE", //
    "NOW", "CMCSA", "UNP", "GE", "AMAT", "NEE", "SPGI", "PM", "LOW", "RTX", //
    "ISRG", "HON", "UBER", "BKNG", "GS", "T", "AXP", "ELV", "BLK", "COP", //
    "SYK", "PLD", "MDT", "NKE", "TJX", "VRTX", "MS", "LMT", "SCHW", "ADP", //
    "MU", "PGR", "C", "CB", "MMC", "BSX", "REGN", "LRCX", "ADI", "SBUX", //
    "GILD", "CI", "ETN", "DE", "BMY", "PANW", "ZTS", "MDLZ", "FI", "SO", //
    "AMT", "BA", "KLAC", "MO", "DUK", "SNPS", "CDNS", "SHW", "ICE", "CME", //
    "CL", "EQIX", "WM", "ITW", "CVS", "APD", "MCO", "SLB", "TGT", "PYPL", //
    "NOC", "BDX", "EOG", "ABNB", "USB", "CSX", "MMM", "PNC", "FDX", "HCA", //
    "MPC", "ORLY", "PSX", "EMR", "GD", "ANET", "MAR", "ROP", "NXPI", "APH", //
    "AJG", "CTAS", "PH", "FCX", "ECL", "ADSK", "AON", "MCK", "HUM", "NSC", //
    "TDG", "WELL", "COF", "PCAR", "TFC", "CARR", "MET", "EL", "AIG", "CPRT", //
    "MSI", "SPG", "AZO", "ROST", "OXY", "DXCM", "PSA", "TRV", "KMB", "GM", //
    "F", "SRE", "CCI", "AFL", "ALL", "KDP", "O", "D", "PAYX", "CMG", //
    "DLR", "MNST", "KMI", "WMB", "IDXX", "AEP", "LULU", "CHTR", "MCHP", "HLT", //
    "EW", "NUE", "BK", "PRU", "JCI", "STZ", "CTVA", "AMP", "YUM", "GIS", //
    "FTNT", "DOW", "LHX", "ODFL", "KHC", "HSY", "ROK", "SYY", "BIIB", "FAST", //
    "OTIS", "CNC", "IQV", "CTSH", "VRSK", "EXC", "GWW", "CSGP", "A", "DD", //
    "PCG", "RSG", "ED", "KR", "XEL", "VLO", "HAL", "DVN", "BKR", "FANG", //
    "EA", "DAL", "UAL", "AAL", "LUV", "CCL", "RCL", "NCLH", "MRNA", "SNOW", //
    "PLTR", "SHOP", "COIN", "RIVN", "LCID", "SOFI", "HOOD", "ROKU", "ZM", "DOCU", //
    "CRWD", "DDOG", "NET", "OKTA", "TEAM", "TWLO", "MDB", "ZS", "SPOT", "SNAP", //
    "PINS", "ETSY", "EBAY", "WBD", "GME", "AMC", "BABA", "JD", "PDD", "NIO", //
    "TSM", "ASML", "SONY", "TM", "ARM", "SMCI", "DELL", "HPQ", "HPE", "WDC", //
    "STX", "ON", "MRVL", "GFS", "MPWR", "TER", "SWKS", "QRVO", "ENPH", "FSLR", //
];

/// `n` distinct symbol names: the real tickers first, then generated names
/// (`ZQ0001`, `ZQ0002`, …) that no real ticker uses and every topic check
/// accepts.
pub fn symbol_names(n: usize) -> Vec<String> {
    let generated = (1..).map(|i| format!("ZQ{i:04}"));
    REAL_TICKERS
        .iter()
        .map(|s| (*s).to_owned())
        .chain(generated)
        .take(n)
        .collect()
}

/// How many real tickers [`symbol_names`] knows.
pub fn real_ticker_count() -> usize {
    REAL_TICKERS.len()
}

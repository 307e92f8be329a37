/* console.elf: a guest for the owner's console. It draws a title and a prompt on the VGA text
 * screen (0xB8000, cursor through the CRTC ports), echoes every keystroke, from the PS/2 keyboard
 * (i8042, IRQ 1) or the serial port (IRQ 4), to both the screen and the serial port, and prints a
 * heartbeat "HB <n>" on serial and on the screen's status line every hb=<ms> (default 1000, 0 = off).
 * seq=1 instead prints a numbered sequence "#<n>" on serial as fast as it can, without halting
 * (keys are still echoed): the densest output, for measuring how long a console goes quiet.
 *
 * Typed characters are echoed one at a time and never collected into a buffer, so the guest's own
 * RAM holds no copy of a typed line (the console tests look for a typed canary everywhere). */
#include "lib.h"

#define COLS 80
#define ROWS 25
#define FIRST_ROW 2          /* rows 0-1: title; row 24: status */
#define LAST_ROW (ROWS - 2)
#define ATTR 0x07
#define TITLE_ATTR 0x1f
#define PROMPT "sealvm> "

static volatile uint16_t *const screen = (volatile uint16_t *)0xb8000;
static uint32_t row = FIRST_ROW, col;

static void set_cursor(void)
{
    uint16_t pos = (uint16_t)(row * COLS + col);
    outb(0x3d4, 0x0f);
    outb(0x3d5, (uint8_t)pos);
    outb(0x3d4, 0x0e);
    outb(0x3d5, (uint8_t)(pos >> 8));
}

static void put_at(uint32_t r, uint32_t c, char ch, uint8_t attr)
{
    screen[r * COLS + c] = (uint16_t)((uint8_t)ch | attr << 8);
}

static void write_at(uint32_t r, uint32_t c, const char *s, uint8_t attr)
{
    while (*s && c < COLS)
        put_at(r, c++, *s++, attr);
}

static void scroll(void)
{
    for (uint32_t r = FIRST_ROW; r < LAST_ROW; r++)
        for (uint32_t c = 0; c < COLS; c++)
            screen[r * COLS + c] = screen[(r + 1) * COLS + c];
    for (uint32_t c = 0; c < COLS; c++)
        put_at(LAST_ROW, c, ' ', ATTR);
}

static void newline(void)
{
    col = 0;
    if (row == LAST_ROW)
        scroll();
    else
        row++;
}

static void prompt(void)
{
    write_at(row, 0, PROMPT, ATTR);
    col = sizeof(PROMPT) - 1;
}

static void echo(char c)
{
    if (c == '\r' || c == '\n') {
        gputs("\r\n" PROMPT);
        newline();
        prompt();
    } else if (c == '\b' || c == 0x7f) {
        if (col > sizeof(PROMPT) - 1) {
            col--;
            put_at(row, col, ' ', ATTR);
            gputs("\b \b");
        }
    } else if (c >= 0x20 && c < 0x7f) {
        gputc(c);
        put_at(row, col, c, ATTR);
        if (++col == COLS)
            newline();
    }
    set_cursor();
}

/* Scan code set 1 (US layout) to ASCII, unshifted and shifted. */
static const char keymap[2][0x3a] = {
    {0, 27, '1', '2', '3', '4', '5', '6', '7', '8', '9', '0', '-', '=', '\b', '\t',
     'q', 'w', 'e', 'r', 't', 'y', 'u', 'i', 'o', 'p', '[', ']', '\r', 0, 'a', 's',
     'd', 'f', 'g', 'h', 'j', 'k', 'l', ';', '\'', '`', 0, '\\', 'z', 'x', 'c', 'v',
     'b', 'n', 'm', ',', '.', '/', 0, '*', 0, ' '},
    {0, 27, '!', '@', '#', '$', '%', '^', '&', '*', '(', ')', '_', '+', '\b', '\t',
     'Q', 'W', 'E', 'R', 'T', 'Y', 'U', 'I', 'O', 'P', '{', '}', '\r', 0, 'A', 'S',
     'D', 'F', 'G', 'H', 'J', 'K', 'L', ':', '"', '~', 0, '|', 'Z', 'X', 'C', 'V',
     'B', 'N', 'M', '<', '>', '?', 0, '*', 0, ' '},
};
static int shift, extended;

static void scancode(uint8_t sc)
{
    if (sc == 0xe0) {
        extended = 1;
        return;
    }
    int ext = extended;
    extended = 0;
    uint8_t key = sc & 0x7f;
    if (key == 0x2a || key == 0x36) { /* left/right shift */
        shift = !(sc & 0x80);
        return;
    }
    if ((sc & 0x80) || ext || key >= sizeof(keymap[0]))
        return; /* releases, arrows and keys we do not echo */
    char c = keymap[shift][key];
    if (c)
        echo(c);
}

static void status(uint32_t hb)
{
    char buf[32] = "HB ";
    uint32_t n = hb, len = 3, digits = 0;
    char tmp[12];
    do {
        tmp[digits++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    while (digits)
        buf[len++] = tmp[--digits];
    buf[len] = 0;
    for (uint32_t c = 0; c < COLS; c++)
        put_at(ROWS - 1, c, ' ', TITLE_ATTR);
    write_at(ROWS - 1, 0, buf, TITLE_ATTR);
}

void gmain(uint32_t magic, struct multiboot_info *mbi)
{
    const char *cmd = magic == MB_BOOT_MAGIC ? mb_cmdline(mbi) : "";
    uint32_t hb_ms = arg_u32(cmd, "hb", 1000), seq = arg_u32(cmd, "seq", 0);

    for (uint32_t i = 0; i < COLS * ROWS; i++)
        screen[i] = (uint16_t)(' ' | ATTR << 8);
    for (uint32_t c = 0; c < COLS; c++)
        put_at(0, c, ' ', TITLE_ATTR);
    write_at(0, 1, "sealvm console test guest - type here", TITLE_ATTR);
    prompt();
    set_cursor();
    status(0);

    time_init();
    outb(0x3f8 + 1, 0x01);              /* UART: interrupt on received data */
    outb(0x3f8 + 4, 0x08);              /* OUT2: lets the IRQ through on a PC */
    while (inb(0x64) & 1)               /* drop anything the controller still holds */
        (void)inb(0x60);
    outb(0x21, (uint8_t)~(0x01 | 0x02 | 0x10)); /* PIC: timer, keyboard, COM1 */
    gputs("CONSOLE READY\r\n" PROMPT);

    uint32_t hb = 0, next = tsc_ms() + hb_ms, n = 0;
    for (;;) {
        if (seq)
            gprintf("#%u\r\n", ++n);
        else
            cpu_halt(); /* a keystroke, a byte on COM1 or the timer wakes us */
        while (inb(0x64) & 1)
            scancode(inb(0x60));
        while (inb(0x3f8 + 5) & 1)
            echo((char)inb(0x3f8));
        if (hb_ms && (int32_t)(tsc_ms() - next) >= 0) {
            next += hb_ms;
            status(++hb);
            gprintf("\r\nHB %u\r\n" PROMPT, hb);
        }
    }
}

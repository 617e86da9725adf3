/**
 * The boards an image can be built for: the root filesystem's extra packages and what goes
 * in the FAT boot partition. Raspberry Pi boards boot from the firmware in that partition
 * (start4.elf reads config.txt, loads the kernel, the initramfs and the device tree);
 * generic-arm64 carries the kernel, the initramfs and an extlinux.conf (U-Boot's and
 * qemu's way of finding them) — the boot test starts the kernel directly with qemu.
 */
import { TalonError } from '../../runtime/core/errors.ts';

export type BoardName = 'rpi4' | 'rpi5' | 'generic-arm64';
export type BoardFamily = 'rpi' | 'generic';

export interface BootFile {
  /** name in the boot partition (may hold one folder level: overlays/x.dtbo) */
  name: string;
  /** a path inside the root filesystem tarball to copy, or the file's text */
  from: { rootfs: string } | { text: string };
  /** skipped (with a warning) when the root filesystem lacks it */
  optional?: boolean;
}

export interface Board {
  name: BoardName;
  family: BoardFamily;
  summary: string;
  /** the kernel command line's console */
  console: string;
  /** what goes in the boot partition, given the kernel version found in the rootfs */
  bootFiles(k: KernelFiles, root: { partuuid: string }): BootFile[];
  /** said during the build: what this board still needs */
  warning?: string;
}

export interface KernelFiles {
  /** e.g. 6.1.0-37-arm64 */
  version: string;
  /** /boot/vmlinuz-<version> */
  vmlinuz: string;
  /** /boot/initrd.img-<version> */
  initrd: string;
  /** /usr/lib/linux-image-<version> (the device trees) */
  dtbDir: string;
}

/** The packages every image has (systemd as init, DHCP through systemd-networkd, a kernel). */
export const BASE_PACKAGES = [
  'systemd',
  'systemd-sysv',
  'udev',
  'dbus',
  'systemd-resolved',
  'systemd-timesyncd',
  'ca-certificates',
  'kmod',
  'iproute2',
  'iputils-ping',
  'linux-image-arm64',
  'initramfs-tools',
  'e2fsprogs',
  'dosfstools',
  // Node 26's official linux builds link libatomic.so.1 (Node 22's did not): without it the
  // binary stops at the dynamic loader (found by test/image's boot test)
  'libatomic1',
];
// openssh-server stays out: a device that boots with a login daemon and no key is an open door;
// add it with a password-less key in your own image if you want it.

export function familyPackages(family: BoardFamily): string[] {
  return family === 'rpi' ? ['raspi-firmware'] : [];
}

/** The initramfs keeps only these modules (MODULES=list): small, and fast to build under emulation. */
export const INITRAMFS_MODULES = [
  'ext4',
  'virtio_pci',
  'virtio_blk',
  'virtio_mmio', // qemu -M virt
  'mmc_block',
  'sdhci_iproc',
  'sdhci_pltfm',
  'bcm2835', // Raspberry Pi SD card (emmc2 on the Pi 4)
  'usb_storage',
  'uas',
  'xhci_pci',
  'pcie_brcmstb',
  'reset_raspberrypi', // USB boot on the Pi 4
];

const RPI_FIRMWARE = '/usr/lib/raspi-firmware';

function cmdline(root: { partuuid: string }, console: string): string {
  return `console=${console} console=tty1 root=PARTUUID=${root.partuuid} rootfstype=ext4 rootwait fsck.repair=yes net.ifnames=0\n`;
}

function rpiConfig(extra: string[]): string {
  return [
    '# Talon image: Raspberry Pi firmware settings (https://www.raspberrypi.com/documentation/computers/config_txt.html)',
    'arm_64bit=1',
    'enable_uart=1',
    'upstream_kernel=1',
    'kernel=vmlinuz',
    'initramfs initrd.img followkernel',
    'disable_overscan=1',
    ...extra,
    '',
  ].join('\n');
}

function rpiBoard(
  name: 'rpi4' | 'rpi5',
  summary: string,
  dtbs: string[],
  firmware: string[],
  extra: string[],
  warning?: string,
): Board {
  return {
    name,
    family: 'rpi',
    summary,
    console: 'ttyS1,115200',
    ...(warning ? { warning } : {}),
    bootFiles(k, root) {
      return [
        ...firmware.map((f) => ({ name: f, from: { rootfs: `${RPI_FIRMWARE}/${f}` } })),
        ...dtbs.map((d) => ({ name: d, from: { rootfs: `${k.dtbDir}/broadcom/${d}` }, optional: name === 'rpi5' })),
        { name: 'vmlinuz', from: { rootfs: k.vmlinuz } },
        { name: 'initrd.img', from: { rootfs: k.initrd } },
        { name: 'config.txt', from: { text: rpiConfig(extra) } },
        { name: 'cmdline.txt', from: { text: cmdline(root, this.console) } },
      ];
    },
  };
}

export const BOARDS: Record<BoardName, Board> = {
  rpi4: rpiBoard(
    'rpi4',
    'Raspberry Pi 4 Model B, Pi 400, CM4 (BCM2711)',
    ['bcm2711-rpi-4-b.dtb', 'bcm2711-rpi-400.dtb', 'bcm2711-rpi-cm4-io.dtb'],
    ['start4.elf', 'fixup4.dat', 'bootcode.bin'],
    // no device_tree=: the firmware picks bcm2711-rpi-4-b, -400 or -cm4 by the board it runs on
    [],
  ),
  // the Pi 5 boots from its EEPROM bootloader (no start*.elf on the card) but needs a kernel and
  // device tree for BCM2712/RP1, which bookworm's 6.1 kernel does not have (image/disk/README.md)
  rpi5: rpiBoard(
    'rpi5',
    "Raspberry Pi 5 (BCM2712): needs a newer kernel than bookworm's, see image/disk/README.md",
    ['bcm2712-rpi-5-b.dtb'],
    [],
    ['[pi5]', 'device_tree=bcm2712-rpi-5-b.dtb', '[all]'],
    "Debian bookworm's kernel 6.1 has no Raspberry Pi 5 support (no bcm2712-rpi-5-b.dtb, no RP1 drivers for ethernet, USB or GPIO): " +
      'this image will not boot a Pi 5 until a kernel with BCM2712/RP1 support replaces it (see image/disk/README.md)',
  ),
  'generic-arm64': {
    name: 'generic-arm64',
    family: 'generic',
    summary: 'any arm64 machine that boots with U-Boot extlinux or direct kernel boot (qemu -M virt)',
    console: 'ttyAMA0',
    bootFiles(k, root) {
      return [
        { name: 'vmlinuz', from: { rootfs: k.vmlinuz } },
        { name: 'initrd.img', from: { rootfs: k.initrd } },
        { name: 'cmdline.txt', from: { text: cmdline(root, this.console) } },
        {
          name: 'extlinux/extlinux.conf',
          from: {
            text: `default talon\nlabel talon\n  kernel /vmlinuz\n  initrd /initrd.img\n  append ${cmdline(root, this.console).trim()}\n`,
          },
        },
        {
          name: 'qemu-boot.sh',
          from: {
            text:
              '#!/bin/sh\n# boot this image in qemu: sh qemu-boot.sh device.img (with vmlinuz and initrd.img copied out of this partition)\n' +
              `exec qemu-system-aarch64 -M virt -cpu cortex-a72 -m 1024 -nographic -kernel vmlinuz -initrd initrd.img \\\n  -append "${cmdline(root, this.console).trim()}" \\\n` +
              '  -drive if=none,file="$1",format=raw,id=hd -device virtio-blk-pci,drive=hd \\\n  -netdev user,id=n,hostfwd=tcp::8080-:8080 -device virtio-net-pci,netdev=n\n',
          },
        },
      ];
    },
  },
};

export const BOARD_NAMES = Object.keys(BOARDS) as BoardName[];

export function board(name: string | undefined): Board {
  if (name === undefined) throw new TalonError('USAGE', `--board is required: one of ${BOARD_NAMES.join(', ')}`);
  if (!Object.hasOwn(BOARDS, name))
    throw new TalonError('USAGE', `unknown board "${name}"; the boards are: ${BOARD_NAMES.join(', ')}`);
  return BOARDS[name as BoardName];
}
